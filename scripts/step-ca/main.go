// Command step-ca is a minimal entry point for smallstep's certificate
// authority, built from Debian's packaged Go sources. Debian ships the
// certificates library but not upstream's cmd/step-ca, so this file wires the
// library's CLI command into a binary. It is test tooling for mtls.rollout,
// not part of the collection.
package main

import (
	"fmt"
	"os"
	"time"

	"github.com/smallstep/certificates/authority"
	"github.com/smallstep/certificates/commands"
	"github.com/urfave/cli"
	"go.step.sm/cli-utils/command"
	"go.step.sm/cli-utils/step"

	// Back ends register themselves on import. Only those Debian ships.
	_ "github.com/smallstep/certificates/cas/softcas"
	_ "github.com/smallstep/certificates/cas/stepcas"
	_ "github.com/smallstep/certificates/kms/awskms"
	_ "github.com/smallstep/certificates/kms/pkcs11"
	_ "github.com/smallstep/certificates/kms/softkms"
	_ "github.com/smallstep/certificates/kms/sshagentkms"
	_ "github.com/smallstep/certificates/kms/yubikey"
)

// Version and BuildTime are set at link time with -X.
var (
	Version   = "0.0.0"
	BuildTime = "unknown"
)

func main() {
	step.Set("Smallstep CA", Version, BuildTime)
	authority.GlobalVersion.Version = Version

	app := cli.NewApp()
	app.Name = "step-ca"
	app.HelpName = "step-ca"
	app.Version = step.Version()
	app.Usage = "an online certificate authority for secure automated certificate management"
	app.UsageText = commands.AppCommand.UsageText
	app.Flags = commands.AppCommand.Flags
	app.Action = commands.AppCommand.Action
	app.Commands = append(command.Retrieve(), cli.Command{
		Name:   "version",
		Usage:  "print the version and exit",
		Action: func(*cli.Context) error { fmt.Println(step.Version()); return nil },
	})
	app.Compiled = time.Now()
	app.Writer = os.Stdout
	app.ErrWriter = os.Stderr
	// urfave/cli prints "step-ca version X"; keep the CLI's own format.
	cli.VersionPrinter = func(c *cli.Context) { fmt.Println(step.Version()) }

	if err := app.Run(os.Args); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
