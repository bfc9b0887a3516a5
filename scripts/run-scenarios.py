# Copyright: contributors to mtls.rollout
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Run `molecule test` for several scenarios, in up to --jobs lanes at once.

Scenarios are independent (each has its own container names, networks and published
ports), and one scenario leaves a core idle much of the time (containers starting,
step-ca and NGINX waking up), so two lanes finish a suite in well under the time of one.
Scenarios start in the order given, so put the longest first.

With one lane, Molecule's output streams to the terminal as it runs. With several, each
scenario writes to build/molecule/<scenario>.log and this prints a line when one starts
and ends; the log of a failed scenario is printed whole, once, when it fails. After a
failure no new scenario starts; the running ones finish (they destroy their containers),
then this exits 1.
"""

from __future__ import annotations

import argparse
import pathlib
import subprocess
import sys
import threading
import time


def run_one(scenario: str, log_dir: pathlib.Path | None) -> tuple[bool, float]:
    start = time.monotonic()
    command = ["molecule", "test", "-s", scenario]
    if log_dir is None:
        returncode = subprocess.run(command, check=False).returncode  # noqa: S603
    else:
        with open(log_dir / f"{scenario}.log", "wb") as log:
            returncode = subprocess.run(  # noqa: S603 (molecule with a scenario name)
                command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, check=False
            ).returncode
    return returncode == 0, time.monotonic() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=1, help="scenarios run at once (default 1)")
    parser.add_argument("--log-dir", default="build/molecule", help="logs when --jobs > 1")
    parser.add_argument("scenarios", nargs="+")
    args = parser.parse_args()
    jobs = max(1, min(args.jobs, len(args.scenarios)))
    log_dir = None
    if jobs > 1:
        log_dir = pathlib.Path(args.log_dir)
        log_dir.mkdir(parents=True, exist_ok=True)

    queue = list(args.scenarios)
    failed: list[str] = []
    lock = threading.Lock()
    suite_start = time.monotonic()

    def say(line: str) -> None:
        print(f"==> [{time.monotonic() - suite_start:5.0f} s] {line}", flush=True)

    def lane() -> None:
        while True:
            with lock:
                if failed or not queue:
                    return
                scenario = queue.pop(0)
                say(f"molecule test -s {scenario}")
            passed, seconds = run_one(scenario, log_dir)
            with lock:
                if passed:
                    say(f"{scenario} passed in {seconds:.0f} s")
                    continue
                failed.append(scenario)
                if log_dir is not None:
                    path = log_dir / f"{scenario}.log"
                    say(f"{scenario} FAILED after {seconds:.0f} s; its log ({path}):")
                    sys.stdout.write(path.read_text(errors="replace"))
                say(f"{scenario} FAILED after {seconds:.0f} s")

    threads = [threading.Thread(target=lane) for _lane in range(jobs)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failed:
        never_ran = f"; not run: {' '.join(queue)}" if queue else ""
        say(f"failed: {' '.join(failed)}{never_ran}")
        return 1
    say(f"all {len(args.scenarios)} scenarios passed ({jobs} at a time)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
