"""drover(1): the build writes it from the settings table (drover
--print-man), it names every flag --help lists, and groff reads it without
a warning."""
import os
import re
import shutil
import subprocess

import pytest

from conftest import BUILD, run_drover

MAN = BUILD / "drover.1"
GROFF = shutil.which("groff")


def help_flags():
    """Every flag of the "  -b, --bind ADDRESS" lines of --help."""
    r = run_drover("--help")
    assert r.returncode == 0
    flags = []
    for line in r.stdout.splitlines():
        if line.startswith("  -"):
            flags += re.findall(r"(?:^|, )(--?[A-Za-z][\w-]*)", line.strip())
    return flags


def render(path, *args):
    """The page as plain text, lines never wrapped (a flag stays whole)."""
    r = subprocess.run([GROFF, "-man", "-Tutf8", "-rLL=1000n", "-P-cbou",
                        *args, str(path)], capture_output=True, text=True,
                       env={**os.environ, "LC_ALL": "C.UTF-8"})
    assert r.returncode == 0, r.stderr
    return r


def test_the_build_writes_the_man_page_drover_print_man_prints():
    assert MAN.exists(), "the build writes build/drover.1"
    r = run_drover("--print-man")
    assert r.returncode == 0
    assert MAN.read_text() == r.stdout
    assert r.stdout.startswith(".\\\" drover(1)")
    assert "\n.TH DROVER 1 " in r.stdout


@pytest.mark.skipif(GROFF is None, reason="groff is not installed")
def test_the_man_page_names_every_flag_help_lists():
    # groff may draw \- as U+2212 (Debian's man.local maps it to '-');
    # tests/unit/test_doc.c checks that no bare '-' reaches troff
    text = render(MAN).stdout.replace("\u2212", "-")
    flags = help_flags()
    assert len(flags) > 40 and "--max-requests-jitter" in flags
    missing = [f for f in flags if not re.search(
        rf"(?<![\w-]){re.escape(f)}(?![\w-])", text)]
    assert not missing, missing
    for word in ("SIGNALS", "SIGHUP", "EXIT STATUS", "ENVIRONMENT",
                 "DROVER_WORKERS", "WEB_CONCURRENCY", "YAML: max_requests"):
        assert word in text


@pytest.mark.skipif(GROFF is None, reason="groff is not installed")
def test_groff_reads_the_man_page_without_warnings():
    r = render(MAN, "-ww", "-z")
    assert r.stderr == ""


@pytest.mark.skipif(shutil.which("lexgrog") is None,
                    reason="lexgrog (man-db) is not installed")
def test_the_name_section_is_what_whatis_and_apropos_read():
    r = subprocess.run(["lexgrog", str(MAN)], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    assert '"drover - ' in r.stdout
