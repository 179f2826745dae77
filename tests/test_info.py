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


def test_engine_never_imports_the_har_application():
    """umsnet_fast.har sits on top of the engine: importing and running the engine leaves it unloaded."""
    import subprocess
    import sys

    code = ("import sys, torch, umsnet_fast; from umsnet_fast import info, cli; "
            "m = umsnet_fast.UMSNet(umsnet_fast.presets.HHAR.sensors, 6, 2).eval(); "
            "m([torch.randn(1, 3, 50), torch.randn(1, 3, 50)]); "
            "print(sorted(n for n in sys.modules if n.startswith('umsnet_fast.har')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.strip() == "[]", out.stdout
