# Copyright: contributors to mtls.rollout
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Installs the renewal program and its systemd units, for ``certificate_plan``.

What one certificate with a renewal timer has on the host (``<unit>`` is ``mtls-renew-<name>``):

* the program, shared by all certificates: ``/usr/local/lib/mtls-rollout/renew.py`` and the
  collection's ``_crypto``, ``_io``, ``_item_lock`` and ``_renewal`` module_utils beside it,
  copied from the module's own payload (so the host runs exactly the code of the collection
  that installed it);
* its settings, ``/etc/mtls-rollout/renew/<name>.json`` (no secret: paths, the CA URL, the
  names, the threshold, the reload commands);
* ``/etc/systemd/system/<unit>.service`` (oneshot: the program with those settings) and
  ``<unit>.timer`` (``OnCalendar`` with ``RandomizedDelaySec``, ``Persistent``), enabled and
  started.

A certificate whose timer is not wanted, or that is absent, has those files removed and its
timer stopped and disabled first. Everything is decided by reading (also in check mode:
``systemctl is-enabled`` and ``is-active`` change nothing), then done.
"""

from __future__ import annotations

import importlib
import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from typing import Any

# The module's payload carries _renewal (and _crypto, _io and _item_lock, which it imports)
# because of this import; their source is what gets installed.
from ansible_collections.mtls.rollout.plugins.module_utils import _io, _renewal

PACKAGE = "ansible_collections.mtls.rollout.plugins.module_utils"
PROGRAM_SOURCES = ("_crypto", "_io", "_item_lock", "_renewal")
_PACKAGE_PATH = ("ansible_collections", "mtls", "rollout", "plugins", "module_utils")
UNIT_PREFIX = "mtls-renew-"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,100}$")
_TIMESPAN = re.compile(r"^[0-9][0-9a-z ]*$")
_CALENDAR = re.compile(r"^[A-Za-z0-9*:/.,~ -]+$")

ENTRY = """\
# Installed by the mtls.rollout certificate role (certificate_renew_timer): the program
# that mtls-renew-<name>.service runs. See docs/lifecycle.md, "Renewal between runs".
import sys

sys.path.insert(0, {folder!r})
from ansible_collections.mtls.rollout.plugins.module_utils import _renewal  # noqa: E402

sys.exit(_renewal.main())
"""

SERVICE = """\
# Installed by the mtls.rollout certificate role; changes are overwritten by its next run.
[Unit]
Description=Renew the certificate {name} ({unit_cert_path}) at step-ca
Wants=network-online.target
After=network-online.target

[Service]
Type=oneshot
ExecStart={exec_start}
SyslogIdentifier={unit}
"""

TIMER = """\
# Installed by the mtls.rollout certificate role; changes are overwritten by its next run.
[Unit]
Description=Check the certificate {name} for renewal

[Timer]
OnCalendar={schedule}
RandomizedDelaySec={random_delay}
Persistent=true

[Install]
WantedBy=timers.target
"""

TIMER_OPTIONS: dict[str, dict[str, Any]] = {
    "enabled": {"type": "bool", "default": False},
    "ca_url": {"type": "str", "default": ""},
    "reload": {"type": "list", "elements": "str", "default": []},
    "rekey": {"type": "bool", "default": False},
    "schedule": {"type": "str", "default": "hourly"},
    "random_delay": {"type": "str", "default": "30m"},
}


class InstallError(Exception):
    """Bad timer settings, or a file or unit that cannot be changed."""


@dataclass(frozen=True)
class Layout:
    """Where things go on the host (tests use a temporary root)."""

    program_dir: str = "/usr/local/lib/mtls-rollout"
    settings_dir: str = "/etc/mtls-rollout/renew"
    unit_dir: str = "/etc/systemd/system"
    state_dir: str = "/var/lib/mtls-rollout/renew"
    systemctl: str = "systemctl"

    @property
    def program(self) -> str:
        return os.path.join(self.program_dir, "renew.py")


def unit_of(name: str) -> str:
    return UNIT_PREFIX + name


def unit_value(text: str) -> str:
    """``text`` as a unit file setting's value: ``%`` would start a specifier."""
    return text.replace("%", "%%")


def exec_line(*words: str) -> str:
    """``words`` as the value of an ``Exec*=`` line: specifiers escaped, variables too in the
    arguments (systemd expands none in the program's path), and each word quoted when it
    holds a space, a quote or a backslash, which would split or change it."""
    return " ".join(
        _exec_word(unit_value(word) if index == 0 else unit_value(word).replace("$", "$$"))
        for index, word in enumerate(words)
    )


def _exec_word(word: str) -> str:
    if re.search(r"[\s\\\"';]", word):
        word = '"' + word.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return word


def check_name(name: str) -> None:
    if not _NAME.match(name):
        raise InstallError(
            f"item {name}: a certificate with a renewal timer needs a name of letters, digits,"
            " '.', '_' and '-' (it names the systemd units)"
        )


def program_files(layout: Layout) -> dict[str, bytes]:
    """The program's files: the entry script, and the module_utils it needs, as a package."""
    files = {layout.program: ENTRY.format(folder=layout.program_dir).encode()}
    folder = layout.program_dir
    for part in _PACKAGE_PATH:
        folder = os.path.join(folder, part)
        files[os.path.join(folder, "__init__.py")] = b""
    for source in PROGRAM_SOURCES:
        files[os.path.join(folder, source + ".py")] = _source(source)
    return files


def _source(name: str) -> bytes:
    """The source of the module_utils ``name`` as this process loaded it (a file, or the
    module's zipped payload)."""
    module = importlib.import_module(f"{PACKAGE}.{name}")
    text = None
    loader = getattr(module, "__loader__", None)
    if loader is not None and hasattr(loader, "get_source"):
        try:
            text = loader.get_source(module.__name__)
        except (ImportError, OSError):
            text = None
    if text is None and os.path.isfile(getattr(module, "__file__", None) or ""):
        with open(module.__file__, encoding="utf-8") as handle:
            text = handle.read()
    if not text:
        raise InstallError(f"the module carries no source of {name} to install")
    return text.encode("utf-8")


@dataclass
class TimerPlan:
    """What to do for one item's timer."""

    name: str
    wanted: bool
    files: dict[str, bytes] = field(default_factory=dict)  # to write (wanted)
    remove: list[str] = field(default_factory=list)  # to remove (not wanted)
    enable: bool = False
    disable: bool = False
    active_before: bool = False

    @property
    def unit(self) -> str:
        return unit_of(self.name)

    @property
    def changes(self) -> bool:
        return bool(self.files or self.remove or self.enable or self.disable)

    def state(self, after: bool) -> str:
        if after:
            return "enabled" if self.wanted else "absent"
        return "enabled" if self.active_before else ("installed" if self.remove else "absent")


def settings_for(item: Any, options: dict[str, Any], bundle_path: str, layout: Layout) -> dict:
    """The program's settings for one item (``item`` is a ``_certificate_plan.Item``)."""
    if not options.get("ca_url", "").startswith("https://"):
        raise InstallError(f"item {item.name}: the renewal timer needs a ca_url (https://...)")
    settings = _renewal.Settings.from_dict(
        {
            "name": item.name,
            "ca_url": options["ca_url"],
            "trust_bundle": bundle_path,
            "cert_path": item.cert_path,
            "key_path": item.key_path,
            "common_name": item.common_name,
            "subject_alt_names": [str(san) for san in item.sans],
            "renew_before": _renew_text(item.renew_before),
            "rekey": bool(options.get("rekey")),
            "reload": list(options.get("reload") or []),
            "state_dir": layout.state_dir,
        }
    )
    return settings.as_dict()


def _renew_text(renew_before: Any) -> str:
    if renew_before.fraction is not None:
        return repr(renew_before.fraction)
    return f"{int(renew_before.seconds or 0)}s"


def _paths(name: str, layout: Layout) -> dict[str, str]:
    unit = unit_of(name)
    return {
        "settings": os.path.join(layout.settings_dir, f"{name}.json"),
        "service": os.path.join(layout.unit_dir, f"{unit}.service"),
        "timer": os.path.join(layout.unit_dir, f"{unit}.timer"),
        "pending": os.path.join(layout.state_dir, name + _renewal.PENDING_SUFFIX),
    }


def _differs(path: str, content: bytes) -> bool:
    try:
        return _io.read_bytes(path) != content
    except _io.FileIOError as exc:
        raise InstallError(str(exc)) from None


def _systemctl(layout: Layout, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(  # noqa: S603 - fixed arguments, no shell
        [layout.systemctl, *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        check=False,
    )


def _enabled_and_active(layout: Layout, unit: str) -> bool:
    enabled = _systemctl(layout, "is-enabled", "--quiet", unit).returncode == 0
    return enabled and _systemctl(layout, "is-active", "--quiet", unit).returncode == 0


def assess_timer(
    item: Any,
    options: dict[str, Any] | None,
    absent: bool,
    bundle_path: str,
    layout: Layout,
) -> TimerPlan:
    """Decide for one item, reading only."""
    options = options or {}
    wanted = bool(options.get("enabled")) and not absent
    plan = TimerPlan(item.name, wanted)
    paths = _paths(item.name, layout)
    timer_unit = plan.unit + ".timer"
    if wanted:
        check_name(item.name)
        for what in ("schedule", "random_delay"):
            value = str(options.get(what) or TIMER_OPTIONS[what]["default"])
            pattern = _CALENDAR if what == "schedule" else _TIMESPAN
            if not pattern.match(value):
                raise InstallError(f"item {item.name}: the timer's {what} {value!r} is not valid")
        if shutil.which(layout.systemctl) is None:
            raise InstallError(
                f"item {item.name}: the renewal timer needs systemd, and {layout.systemctl}"
                " is not on this host; set certificate_renew_timer to false for it"
            )
        settings = settings_for(item, options, bundle_path, layout)
        values = {
            "name": item.name,
            "unit": plan.unit,
            "unit_cert_path": unit_value(item.cert_path),
            "exec_start": exec_line(sys.executable, "-I", layout.program, paths["settings"]),
            "schedule": options.get("schedule") or TIMER_OPTIONS["schedule"]["default"],
            "random_delay": options.get("random_delay") or TIMER_OPTIONS["random_delay"]["default"],
        }
        desired = {
            paths["settings"]: (json.dumps(settings, indent=2, sort_keys=True) + "\n").encode(),
            paths["service"]: SERVICE.format(**values).encode(),
            paths["timer"]: TIMER.format(**values).encode(),
        }
        plan.files = {path: data for path, data in desired.items() if _differs(path, data)}
        plan.active_before = _enabled_and_active(layout, timer_unit)
        plan.enable = not plan.active_before or bool(plan.files)
        return plan
    if not _NAME.match(item.name):
        # No timer is ever installed under such a name (check_name above), and its paths
        # could point elsewhere ("../x" would remove <settings_dir>/../x.json).
        return plan
    plan.remove = [
        path
        for key, path in paths.items()
        if os.path.lexists(path) and (key != "pending" or absent)
    ]
    if os.path.lexists(paths["timer"]) and shutil.which(layout.systemctl) is not None:
        plan.active_before = _enabled_and_active(layout, timer_unit)
        plan.disable = True
    return plan


def assess_program(layout: Layout) -> dict[str, bytes]:
    """The program files that differ from what is installed."""
    return {path: data for path, data in program_files(layout).items() if _differs(path, data)}


def _write(module: Any, path: str, content: bytes) -> None:
    folder = os.path.dirname(path)
    try:
        os.makedirs(folder, mode=0o755, exist_ok=True)
        _io.write_file(module, path, content, {"mode": "0644"}, secret=False)
    except (OSError, _io.FileIOError) as exc:
        raise InstallError(str(exc)) from None


def _run(layout: Layout, *args: str) -> None:
    proc = _systemctl(layout, *args)
    if proc.returncode != 0:
        output = proc.stdout.decode("utf-8", "replace").strip()
        raise InstallError(f"systemctl {' '.join(args)} failed: {output or proc.returncode}")


def apply(module: Any, program: dict[str, bytes], plans: list[TimerPlan], layout: Layout) -> bool:
    """Carry the plans out (not in check mode). Returns whether anything changed."""
    changed = bool(program) or any(plan.changes for plan in plans)
    if module.check_mode or not changed:
        return changed
    for plan in plans:
        if plan.disable:
            _run(layout, "disable", "--now", plan.unit + ".timer")
        for path in plan.remove:
            try:
                _io.remove_file(path)
            except _io.FileIOError as exc:
                raise InstallError(str(exc)) from None
    for path, content in program.items():
        _write(module, path, content)
    units_changed = any(plan.remove for plan in plans)
    for plan in plans:
        for path, content in plan.files.items():
            _write(module, path, content)
            units_changed |= path.startswith(layout.unit_dir + os.sep)
    if units_changed:
        _run(layout, "daemon-reload")
    for plan in plans:
        if plan.enable:
            _run(layout, "enable", plan.unit + ".timer")
            # restart, not start: a changed schedule takes effect now.
            _run(layout, "restart", plan.unit + ".timer")
    return changed
