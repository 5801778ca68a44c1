"""`edgecam models info`: graph-derived numbers against the MobileNets paper and the shared README."""

from __future__ import annotations

import json
import subprocess

import pytest
from click.testing import CliRunner

from edgecam.errors import EdgecamError
from edgecam.cli.models import info_command
from edgecam.modelinfo import model_info
from edgecam.tflite_graph import builtin_name, read_graph

from conftest import CLASSIFIER_025, CLASSIFIER_050, EDGETPU_MODEL, SSD_MODEL


def _close(value, expected, tol=0.02):
    return abs(value - expected) <= tol * expected


# (model, Mult-Adds, parameters): the MobileNets paper (Howard et al. 2017, table 7) for the
# classifiers, ../shared/README.md for the SSD detector.
REFERENCE = [
    (CLASSIFIER_050, 76e6, 1.32e6),
    (CLASSIFIER_025, 13.6e6, 0.47e6),
    (SSD_MODEL, 728e6, 4.10e6),
]


@pytest.mark.parametrize("path,macs,params", REFERENCE, ids=lambda v: getattr(v, "name", None))
def test_macs_and_params_match_reference(path, macs, params):
    info = model_info(str(path))
    assert _close(info.macs, macs), f"Mult-Adds {info.macs:,} vs {macs:,.0f}"
    assert _close(info.params, params), f"params {info.params:,} vs {params:,.0f}"


def test_classifier_tensors_and_ops():
    info = model_info(str(CLASSIFIER_050))
    assert not info.edgetpu and not info.is_detector
    (inp,) = info.inputs
    assert inp.shape == (1, 160, 160, 3) and inp.dtype == "uint8"
    assert inp.scale == pytest.approx(1 / 128) and inp.zero_point == 128
    (out,) = info.outputs
    assert out.shape == (1, 1001)
    assert info.op_counts["CONV_2D"] == 15 and info.op_counts["DEPTHWISE_CONV_2D"] == 13
    assert sum(info.op_counts.values()) == len(read_graph(CLASSIFIER_050.read_bytes()).ops)


def test_ssd_post_process_options_and_output_shapes():
    info = model_info(str(SSD_MODEL))
    assert info.is_detector
    assert info.ssd.num_classes == 90 and info.ssd.max_detections == 10
    roles = {t.role: t.shape for t in info.outputs}
    assert roles == {"boxes": (1, 10, 4), "classes": (1, 10), "scores": (1, 10), "count": (1,)}
    assert info.op_counts["TFLite_Detection_PostProcess"] == 1


def test_edgetpu_model_is_flagged():
    info = model_info(str(EDGETPU_MODEL))
    assert info.edgetpu
    assert "edgetpu-custom-op" in info.op_counts
    assert not model_info(str(SSD_MODEL)).edgetpu


def test_json_output_parses():
    result = CliRunner().invoke(info_command, [str(SSD_MODEL), "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    assert doc["v"] == 1 and doc["macs"] == model_info(str(SSD_MODEL)).macs
    assert doc["inputs"][0]["quantization"] == {"scale": 0.0078125, "zero_point": 128}
    assert doc["detection_postprocess"]["num_classes"] == 90
    assert doc["edgetpu"] is False


def test_text_output_names_the_numbers():
    result = CliRunner().invoke(info_command, [str(CLASSIFIER_025)])
    assert result.exit_code == 0, result.output
    assert "Mult-Adds: 13.6 M" in result.output and "parameters: 0.47 M" in result.output


def test_bad_model_is_one_line_error(tmp_path):
    junk = tmp_path / "junk.tflite"
    junk.write_bytes(b"not a model at all")
    with pytest.raises(EdgecamError, match="not a TFLite model"):
        model_info(str(junk))
    with pytest.raises(EdgecamError, match="model not found"):
        model_info(str(tmp_path / "missing.tflite"))


def test_builtin_names_follow_schema():
    assert [builtin_name(c) for c in (0, 3, 4, 9, 22, 25, 14)] == [
        "ADD", "CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "RESHAPE", "SOFTMAX", "LOGISTIC"]
    assert builtin_name(999) == "BUILTIN_999"


def test_cli_models_info(edgecam_cmd, cli_env):
    proc = subprocess.run(edgecam_cmd + ["models", "info", str(CLASSIFIER_050), "--json"],
                          capture_output=True, text=True, env=cli_env, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert _close(json.loads(proc.stdout)["macs"], 76e6)
    bad = subprocess.run(edgecam_cmd + ["models", "info", "/nonexistent.tflite"],
                         capture_output=True, text=True, env=cli_env, timeout=60)
    assert bad.returncode == 2 and bad.stderr.startswith("edgecam: error: model not found")
