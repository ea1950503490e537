"""The method registry: each method declares its identity once, and a method registered from
outside the library (here, this file) trains, records and shows in the tables like a shipped one."""

import pytest
import torch

from incseg_lib import losses, results
from incseg_lib.config import step0_name
from incseg_lib.experiment import train_step
from incseg_lib.findings import incremental_findings
from incseg_lib.methods import (
    FAMILIES,
    Method,
    MethodSpec,
    get_method,
    is_method,
    method_names,
    method_spec,
    methods_of,
    register,
    step0_label,
    step0_names,
    unregister,
)
from incseg_lib.methods.base import plain_ce


def _toy_distillation(weight):
    """Mean squared distance between the new and old logits of the old classes: a toy method."""

    def terms(logits, old, mask):
        diff = (logits[:, : old.shape[1]] - old).pow(2).mean(dim=1)
        return {"l2": weight * (diff[mask].mean() if mask is not None else diff.mean())}

    return terms


def _toy_build(name, weights):
    return Method(name, plain_ce, _toy_distillation(weights["l2"]), weights=weights)


@pytest.fixture
def toy_method():
    spec = register(
        MethodSpec(
            name="toy-l2",
            label="Toy L2",
            order=85,
            build=_toy_build,
            defaults={"l2": 1.0},
            main_weight="l2",
            family="output distillation",
            source="this test",
        )
    )
    yield spec
    unregister("toy-l2")
    assert not is_method("toy-l2")


def test_shipped_methods_declare_their_identity():
    names = method_names()
    assert names[:3] == ("ft", "lwf", "lwf-mc") and names[-6:] == (
        "plop",
        "sdr",
        "sdr-kd10",
        "sdr-only",
        "dft",
        "dft-nopre",
    )
    for name in names:
        spec = method_spec(name)
        assert spec.family in FAMILIES and spec.label and spec.source
        assert results.display_name(name) == spec.label
        built = get_method(name)
        assert built.name == name and built.step0 == spec.step0 == step0_name(name)
    assert methods_of("feature space") == ("plop", "sdr", "sdr-kd10", "sdr-only")
    assert method_names(ablations=False)[-3:] == ("plop", "sdr", "dft")  # sdr-kd10, sdr-only, dft-nopre vary others
    assert methods_of("output distillation") == ("lwf", "lwf-mc", "ilt")
    assert set(step0_names()) == {"step0", "step0-bce", "step0-prealloc"} and step0_label("step0-bce") == "step 0 (BCE)"


def test_protocol_weights_replace_only_weights_a_method_has():
    assert get_method("sdr").weights["ukd"] == 100.0  # LTTM/SDR argparser.py L53
    assert get_method("sdr", protocol="shared").weights["ukd"] == 10.0
    assert "ukd" not in get_method("sdr-only").weights  # shares SDR's protocol, not its KD
    kd10 = get_method("sdr-kd10")  # the README's weight, at SDR's official rate and normalisation
    assert kd10.weights["ukd"] == 10.0 and kd10.protocol.lr_factor == 0.1 and kd10.protocol.ce_normalisation == "all"
    assert get_method("sdr", kd_weight=5).weights["ukd"] == 5.0
    assert get_method("plop", kd_weight=5).weights == get_method("plop").weights  # nothing to override


def test_registration_errors():
    with pytest.raises(ValueError, match="'mib' is registered already"):
        register(MethodSpec(name="mib", label="x", order=1, build=_toy_build))
    with pytest.raises(ValueError, match="run name of the course"):
        register(MethodSpec(name="joint", label="x", order=1, build=_toy_build))
    with pytest.raises(ValueError, match="family 'other'"):
        MethodSpec(name="x", label="x", order=1, build=_toy_build, family="other")
    with pytest.raises(ValueError, match="main_weight 'kd' is not one of its defaults"):
        MethodSpec(name="x", label="x", order=1, build=_toy_build, main_weight="kd")
    with pytest.raises(ValueError, match="a step 0 of its own"):
        MethodSpec(name="x", label="x", order=1, build=_toy_build, step0="step0-x")
    with pytest.raises(ValueError, match="unknown method 'icarl'; choose one of"):
        method_spec("icarl")


def test_toy_method_loss_is_its_formula(toy_method):
    torch.manual_seed(0)
    logits, old = torch.randn(2, 5, 4, 4), torch.randn(2, 3, 4, 4)
    mask = losses.labelled_mask(torch.zeros(2, 4, 4, dtype=torch.long))
    got = get_method("toy-l2", kd_weight=2.0).distillation(logits, old, mask)["l2"]
    assert torch.isclose(got, 2.0 * ((logits[:, :3] - old) ** 2).mean())


def test_toy_method_trains_records_and_shows_with_its_label(toy_method, tiny_cfg, tmp_path):
    cfg = tiny_cfg(max_train_images=24)
    out = train_step(cfg, step=1, method="toy-l2", notebook="test", progress=False)
    rec = out.record
    assert rec["method"] == "toy-l2" and rec["step_protocol"]["weights"] == {"l2": 1.0}
    assert rec["step_protocol"]["lr"] == pytest.approx(cfg.lr * 0.1)  # MiB's trainer protocol by default
    assert out.history["loss_l2"][0] > 0  # its term logged by the engine like any other
    table = results.incremental_table(results.load(tmp_path))
    labels = [str(i) for i in table.index]
    assert any("Toy L2" in label for label in labels), labels
    others = [dict(rec, method=m) for m in ("plop", "ft", "mib")]  # the same numbers under shipped names
    rows = [str(i) for i in results.incremental_table([rec, *others]).index]
    assert [r.split()[0] for r in rows] == ["FT", "MiB", "Toy", "PLOP"]  # at its declared order (85)
    plan = {"tasks": ["15-5"], "settings": ["overlapped"], "methods": ["ft", "toy-l2", "mib"]}
    texts = [f.text for f in incremental_findings(plan)]
    assert "15-5 overlapped: Toy L2 keeps more than FT" in texts  # its family's findings, with its label
