import pytest

import caffe_lite
from caffe_lite.cli import main


@pytest.mark.parametrize("flag", ["--version", "-version"])
def test_version_flag_prints_the_package_version(flag, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([flag])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.strip() == f"caffe-lite {caffe_lite.__version__}"
