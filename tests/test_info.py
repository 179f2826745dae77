"""`umsnet-fast info`."""
import subprocess
import sys

from umsnet_fast.cli import main


def test_info_hhar_a(capsys):
    assert main(["info", "--variant", "A", "--preset", "hhar"]) == 0
    out = capsys.readouterr().out
    assert "2,873,414" in out and "2.905M" in out and "72.863M" in out
    assert "reference" in out and "stage 2" in out


def test_info_other_variant_and_slices(capsys):
    assert main(["info", "--variant", "c", "--preset", "MHEALTH", "--slices", "6"]) == 0
    out = capsys.readouterr().out
    assert "K=6" in out and "paper" not in out.split("Backends")[0].lower().split("the paper gives")[0]


def test_python_m_entry_point():
    r = subprocess.run([sys.executable, "-m", "umsnet_fast", "info", "--preset", "mhealth"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "5.555M" in r.stdout
