# Copyright: contributors to mtls.rollout
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""scripts/docs.py: README variable tables from argument_specs, and its staleness checks."""

from __future__ import annotations

import importlib.util
import textwrap
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
_SPEC = importlib.util.spec_from_file_location("mtls_docs", REPO / "scripts" / "docs.py")
assert _SPEC is not None and _SPEC.loader is not None
docs = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(docs)


@pytest.mark.parametrize(
    ("markup", "expected"),
    [
        ("Set I(certificate_dir).", "Set *certificate_dir*."),
        ("Run C(nginx -t) first.", "Run `nginx -t` first."),
        ("A | B, C(a|b)", "A \\| B, `a\\|b`"),
        ("See U(https://smallstep.com/docs).", "See <https://smallstep.com/docs>."),
        ("L(step-ca,https://smallstep.com)", "[step-ca](https://smallstep.com)"),
        (
            "Signs with M(mtls.rollout.step_ca_sign).",
            "Signs with [`mtls.rollout.step_ca_sign`]"
            "(../../docs/reference/step_ca_sign_module.rst).",
        ),
        ("Uses M(ansible.builtin.uri).", "Uses `ansible.builtin.uri`."),
        ("Files <name>.key, not *all*.", "Files \\<name\\>.key, not \\*all\\*."),
        ("C(`x`)", "`` `x` ``"),
        (["First.", "Second."], "First. Second."),
    ],
)
def test_markup_becomes_readable_markdown(markup, expected):
    assert docs.markdown(markup, "certificate", "opt") == expected


def test_bad_markup_names_the_file_and_option():
    with pytest.raises(
        SystemExit, match=r"roles/nginx_mtls/meta/argument_specs.yml: sites.name: .*I\("
    ):
        docs.markdown("Broken I(markup", "nginx_mtls", "sites.name")


OPTIONS = yaml.safe_load(
    textwrap.dedent(
        """
        demo_url:
          type: str
          required: true
          description: Where.
        demo_mode:
          type: str
          choices: [fast, safe]
          default: safe
          description: How.
        demo_path:
          type: path
          default: "{{ demo_dir }}/x"
          description: A templated default.
        demo_long:
          type: list
          elements: str
          default: [aaaaaaaaaaaaaaaaaaaa, bbbbbbbbbbbbbbbbbbbb, cccccccccccccccccccc, dddd]
          description: Too long for a cell.
        demo_sites:
          type: list
          elements: dict
          default: []
          description: Sites.
          options:
            name:
              type: str
              required: true
              description: Site name.
            tls:
              type: dict
              description: TLS settings.
              options:
                depth:
                  type: int
                  default: 2
                  description: Depth.
        """
    )
)


def test_tables_cover_every_option_and_nest_suboptions_with_their_path():
    text = "\n".join(docs.tables(OPTIONS, "demo"))
    assert "| `demo_url` | str | required | Where. |" in text
    assert "| `demo_mode` | str: `fast`, `safe` | `safe` | How. |" in text
    assert '| `demo_path` | path | `"{{ demo_dir }}/x"` | A templated default. |' in text
    assert "| `demo_long` | list of str | see `defaults/main.yml` | Too long for a cell. |" in text
    assert "### Keys of `demo_sites[]`" in text
    assert "| `name` | str | required | Site name. |" in text
    assert "#### Keys of `demo_sites[].tls`" in text
    assert "| `depth` | int | `2` | Depth. |" in text
    # Every table row has the same four columns, even with pipes in the text.
    rows = [line for line in text.splitlines() if line.startswith("|")]
    assert all(line.replace("\\|", "").count("|") == 5 for line in rows)


def test_only_the_text_between_the_markers_is_replaced(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text(
        f"# Role\n\nHand-written prose.\n\n{docs.BEGIN}\nold table\n{docs.END}\n\nMore prose.\n"
    )
    new = docs.updated_readme(readme, f"{docs.BEGIN}\nnew table\n{docs.END}")
    assert (
        new
        == f"# Role\n\nHand-written prose.\n\n{docs.BEGIN}\nnew table\n{docs.END}\n\nMore prose.\n"
    )


def test_a_readme_without_markers_is_refused(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("# Role\n")
    with pytest.raises(SystemExit, match="lacks the markers"):
        docs.updated_readme(readme, "x")


def _role(tmp_path: Path, defaults: str, spec_options: dict) -> Path:
    role = tmp_path / "demo"
    (role / "defaults").mkdir(parents=True)
    (role / "meta").mkdir()
    (role / "defaults/main.yml").write_text(defaults)
    spec = {"argument_specs": {"main": {"options": spec_options}}}
    (role / "meta/argument_specs.yml").write_text(yaml.safe_dump(spec))
    return role


def test_defaults_that_disagree_with_the_spec_are_reported(tmp_path):
    role = _role(
        tmp_path,
        "---\ndemo_port: 8443\ndemo_hidden: 1\ndemo_undocumented_default: x\n",
        {
            "demo_port": {"type": "int", "default": 443},
            "demo_missing": {"type": "str", "default": ""},
            "demo_undocumented_default": {"type": "str"},
        },
    )
    problems = docs.defaults_problems(role)
    assert any(
        "demo_port is 8443, but meta/argument_specs.yml says its default is 443" in p
        for p in problems
    )
    assert any("demo_hidden is not in meta/argument_specs.yml" in p for p in problems)
    assert any("demo_missing has a default in the spec but none here" in p for p in problems)
    assert any(
        "demo_undocumented_default has no default in meta/argument_specs.yml" in p for p in problems
    )
    assert len(problems) == 4


def test_defaults_that_agree_are_not_reported(tmp_path):
    role = _role(tmp_path, "---\ndemo_port: 443\n", {"demo_port": {"type": "int", "default": 443}})
    assert docs.defaults_problems(role) == []


@pytest.mark.parametrize("role", sorted(p.name for p in (REPO / "roles").iterdir()))
def test_the_collections_roles_agree_with_their_specs(role):
    assert docs.defaults_problems(REPO / "roles" / role) == []


def test_stale_reference_names_missing_extra_and_changed_pages(tmp_path):
    fresh, current = tmp_path / "fresh", tmp_path / "current"
    for folder in (fresh, current):
        folder.mkdir()
        (folder / "same.rst").write_text("same\n")
    (fresh / "changed.rst").write_text("new\n")
    (current / "changed.rst").write_text("old\n")
    (fresh / "added.rst").write_text("x\n")
    (current / "removed.rst").write_text("x\n")
    stale = docs.stale_reference(fresh, current)
    assert stale == [
        f"{current}/added.rst is missing",
        f"{current}/removed.rst is no longer generated",
        f"{current}/changed.rst is stale",
    ]
