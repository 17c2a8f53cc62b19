"""Planning: the paper's comparison and Table 2 grids as deterministic run folders."""

from __future__ import annotations

import math

import pytest

from unifocal.study.plan import (
    TABLE2_GRIDS,
    arm_name,
    compare_plan,
    parse_grid,
    parse_losses,
    prepare_study,
    table2_lambda,
    tune_plan,
)

BASE = {"dataset": {"name": "phantom2d"}, "epochs": 2, "seed": 0}


def test_compare_paper_settings_and_names(tmp_path):
    specs = compare_plan(BASE, tmp_path, "paper", n_folds=5, validate=False)
    assert len(specs) == 7 * 5
    arms = {s.arm: s.config["loss"] for s in specs}
    # the settings, written out independently of PAPER_SETTINGS
    want = {
        "focal": {"alpha": 0.25, "gamma": 2.0},
        "dice": {},
        "tversky": {"alpha": 0.3, "beta": 0.7},
        "focal_tversky": {"alpha": 0.3, "beta": 0.7, "gamma": 4 / 3},
        "combo": {"alpha": 0.5, "beta": 0.5},
        "hybrid_focal": {"lambda_": 0.5, "focal_alpha": 0.25, "focal_gamma": 2.0, "tversky_alpha": 0.3,
                         "tversky_beta": 0.7, "tversky_gamma": 4 / 3},
        "unified_focal": {"delta": 0.6, "gamma": 0.2, "lambda_": 0.5},
    }
    got = {v["name"]: v["params"] for v in arms.values()}
    assert got.keys() == want.keys()
    for k, p in want.items():
        assert got[k].keys() == p.keys()
        assert all(math.isclose(got[k][q], p[q]) for q in p)
    assert "unified_focal-delta0.6-gamma0.2-lambda0.5" in arms
    assert "focal_tversky-alpha0.3-beta0.7-gamma1.33333" in arms
    s = specs[-1]
    assert s.run_dir == tmp_path / s.arm / f"fold{s.fold}"
    assert s.config["fold"] == s.fold and s.config["n_folds"] == 5
    assert s.config["splits_dir"] == str(tmp_path.resolve())
    assert s.config["epochs"] == 2
    # deterministic: planning again gives the same folders and configurations
    again = compare_plan(BASE, tmp_path, "paper", n_folds=5, validate=False)
    assert [(a.run_dir, a.config) for a in again] == [(b.run_dir, b.config) for b in specs]


def test_compare_subset_extra_and_params(tmp_path):
    specs = compare_plan(BASE, tmp_path, "dice, unified_focal:delta=0.7:lambda=1, cross_entropy,dice",
                         n_folds=3, folds=[2, 0], validate=False)
    # fold by fold (a study cut short leaves whole folds), arms in the order given, duplicates dropped
    assert [s.name for s in specs] == [
        "dice/fold0", "unified_focal-delta0.7-gamma0.2-lambda1/fold0", "cross_entropy/fold0",
        "dice/fold2", "unified_focal-delta0.7-gamma0.2-lambda1/fold2", "cross_entropy/fold2",
    ]
    assert specs[1].config["loss"]["params"] == {"delta": 0.7, "gamma": 0.2, "lambda_": 1.0}


@pytest.mark.parametrize("bad, kw", [
    ("dice", {"n_folds": 1}),
    ("dice", {"n_folds": 3, "folds": [3]}),
    ("", {}),
    ("dice:delta", {}),
])
def test_compare_rejects_bad_input(tmp_path, bad, kw):
    with pytest.raises(ValueError):
        compare_plan(BASE, tmp_path, bad, validate=False, **kw)


def test_missing_dataset_rejected(tmp_path):
    with pytest.raises(ValueError, match="dataset"):
        compare_plan({"epochs": 1}, tmp_path, "dice", validate=False)


def test_unknown_loss_rejected_by_loss_library(tmp_path):
    with pytest.raises(ValueError):
        compare_plan(BASE, tmp_path, "dice,unified_focel", validate=True)


def test_table2_grids(tmp_path):
    specs = tune_plan(BASE, tmp_path, "table2", n_folds=2, validate=False)
    arms = {}
    for s in specs:
        arms.setdefault(s.arm, s.config["loss"]["params"])
    deltas = sorted(p["delta"] for p in arms.values() if p["gamma"] == 0.0 and p["lambda_"] == 0.5)
    assert deltas == pytest.approx([0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9])
    gammas = sorted(p["gamma"] for p in arms.values() if p["delta"] == 0.6 and p["lambda_"] == 0.5)
    assert gammas == pytest.approx([0.0, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5])  # 0.0 from the delta sweep
    lambdas = sorted(p["lambda_"] for p in arms.values() if p["delta"] == 0.6 and p["gamma"] == 0.2)
    assert lambdas == pytest.approx([i / 10 for i in range(11)])
    # 9 + 6 + 11 sweeps share (0.6, 0.2, 0.5): planned once
    assert len(arms) == 9 + 6 + 11 - 1
    assert len(specs) == 2 * len(arms)
    assert all(s.run_dir.name in ("fold0", "fold1") for s in specs)
    # one sweep only
    only = tune_plan(BASE, tmp_path, "gamma", n_folds=2, validate=False)
    assert len(only) == 12
    assert TABLE2_GRIDS["delta"][2] == {"gamma": 0.0, "lambda_": 0.5}


def test_table2_lambda_mapping():
    # LOSSES.md convention 2: Table 2's λ=0 is the asymmetric Focal loss alone, i.e. our λ=1
    assert table2_lambda(1.0) == 0.0
    assert table2_lambda(0.0) == 1.0
    assert table2_lambda(0.3) == pytest.approx(0.7)


def test_user_grid(tmp_path):
    assert parse_grid("delta=0.1:0.3:0.1; lambda=0,1") == {"delta": [0.1, 0.2, 0.3], "lambda_": [0.0, 1.0]}
    specs = tune_plan(BASE, tmp_path, "delta=0.5,0.7;gamma=0.1,0.3", n_folds=2, validate=False)
    params = {s.arm: s.config["loss"]["params"] for s in specs}
    assert len(params) == 4
    assert all(p["lambda_"] == 0.5 for p in params.values())  # fixed at the paper's optimum
    assert {(p["delta"], p["gamma"]) for p in params.values()} == {(0.5, 0.1), (0.5, 0.3), (0.7, 0.1), (0.7, 0.3)}
    for bad in ("deltaa", "delta=", "delta=a", "delta=0.5:0.1:0.1", "nogrid"):
        with pytest.raises(ValueError):
            tune_plan(BASE, tmp_path, bad, n_folds=2, validate=False)


def test_arm_name_is_injective_enough():
    assert arm_name("dice", {}) == "dice"
    assert arm_name("tversky", {"beta": 0.7, "alpha": 0.3}) == "tversky-alpha0.3-beta0.7"
    assert arm_name("tversky", {"alpha": 0.3, "beta": 0.7}) != arm_name("tversky", {"alpha": 0.7, "beta": 0.3})
    with pytest.raises(ValueError):
        arm_name("../x", {})
    with pytest.raises(ValueError):
        arm_name("dice", {"p": "a/b"})
    assert parse_losses("paper,dice")[1][0] == "dice" and len(parse_losses("paper,dice")) == 7


def test_prepare_study_guards_shared_config(tmp_path):
    specs = compare_plan(BASE, tmp_path, "dice", n_folds=2, validate=False)
    prepare_study(tmp_path, specs, write_splits=False)
    assert (tmp_path / "study.yaml").is_file()
    prepare_study(tmp_path, specs, write_splits=False)  # same study again: fine
    other = compare_plan({**BASE, "epochs": 5}, tmp_path, "dice", n_folds=2, validate=False)
    with pytest.raises(ValueError, match="epochs"):
        prepare_study(tmp_path, other, write_splits=False)


def test_study_folder_continues_with_the_data_elsewhere_and_after_new_keys(tmp_path):
    """A committed study folder is continued on a machine where the dataset has another path, and by a
    version of the library that has configuration keys the folder's study.yaml predates."""
    import yaml

    here, there = tmp_path / "a" / "BUSI", tmp_path / "b" / "BUSI"
    here.mkdir(parents=True)
    there.mkdir(parents=True)
    study = tmp_path / "study"
    specs = compare_plan({**BASE, "dataset": {"path": str(here)}}, study, "dice", n_folds=2, validate=False)
    prepare_study(study, specs, write_splits=False)
    recorded = yaml.safe_load((study / "study.yaml").read_text())
    assert recorded["dataset"]["path"] == "BUSI"
    moved = compare_plan({**BASE, "dataset": {"path": str(there)}}, study, "dice", n_folds=2, validate=False)
    prepare_study(study, moved, write_splits=False)
    # a key the folder predates matches its default, not another value
    del recorded["epochs"]
    (study / "study.yaml").write_text(yaml.safe_dump(recorded))
    with pytest.raises(ValueError, match="epochs"):
        prepare_study(study, moved, write_splits=False)
    recorded["epochs"] = 2
    recorded.pop("momentum", None)
    (study / "study.yaml").write_text(yaml.safe_dump(recorded))
    prepare_study(study, moved, write_splits=False)
    with pytest.raises(ValueError, match="momentum"):
        prepare_study(study, compare_plan({**BASE, "dataset": {"path": str(there)}, "momentum": 0.9}, study, "dice",
                                          n_folds=2, validate=False), write_splits=False)


def test_study_continues_under_other_stopping_limits(tmp_path):
    """``patience`` and ``stop_after`` decide only where each run stops: a study is continued under other
    values, and a study.yaml that recorded them (as earlier versions did) is rewritten without them."""
    import yaml

    first = compare_plan({**BASE, "patience": 10, "stop_after": 4}, tmp_path, "dice", n_folds=2, validate=False)
    prepare_study(tmp_path, first, write_splits=False)
    assert not {"patience", "stop_after"} & set(yaml.safe_load((tmp_path / "study.yaml").read_text()))
    recorded = yaml.safe_load((tmp_path / "study.yaml").read_text())
    (tmp_path / "study.yaml").write_text(yaml.safe_dump({**recorded, "patience": 10}))
    later = compare_plan({**BASE, "patience": None}, tmp_path, "dice", n_folds=2, validate=False)
    prepare_study(tmp_path, later, write_splits=False)
    assert yaml.safe_load((tmp_path / "study.yaml").read_text()) == recorded
    with pytest.raises(ValueError, match="epochs"):  # the guard itself still holds
        prepare_study(tmp_path, compare_plan({**BASE, "epochs": 7}, tmp_path, "dice", n_folds=2, validate=False),
                      write_splits=False)
