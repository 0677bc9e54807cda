"""Federated configuration once: one set of defaults (FLConfig) behind the CLI and the Flower app, keys
spelled once for server and device, a missing key refused by name, and one enrollment cache."""

from __future__ import annotations

from dataclasses import fields

import numpy as np
import pytest
import tomllib
from flwr.app import ArrayRecord, Context, Message, RecordDict
from flwr.app.message_type import MessageType
from flwr.common import FitIns, ndarrays_to_parameters
from flwr.compat.common import recorddict_compat as compat

from fedtts.app.cli import build_parser
from fedtts.app.cli.fl_run import _cfg_from_args
from fedtts.federated.config import FitInstructions, FitKey, FLConfig, MissingConfigKey
from fedtts.federated.deploy import APP_DIR
from fedtts.federated.model import federated_arrays, frozen_digest, load_start_model

pytestmark = pytest.mark.federated


def test_the_flower_app_and_the_cli_take_flconfig_defaults():
    declared = tomllib.loads((APP_DIR / "pyproject.toml").read_text())["tool"]["flwr"]["app"]["config"]
    assert declared == FLConfig().to_run_config()  # values too, not only the keys

    for argv in (["fl", "simulate"], ["fl", "deploy", "run"]):
        got = _cfg_from_args(build_parser().parse_args(argv))
        own = ("progress",)  # the CLI shows a progress bar unless --no-progress
        for f in fields(FLConfig):
            if f.name not in own:
                assert getattr(got, f.name) == getattr(FLConfig(), f.name), (argv, f.name)


def test_a_missing_run_config_key_is_refused_by_name():
    full = FLConfig().to_run_config()
    assert FLConfig.from_run_config(full) == FLConfig()
    with pytest.raises(MissingConfigKey, match="'min-fit-clients'"):
        FLConfig.from_run_config({k: v for k, v in full.items() if k != "min-fit-clients"})
    with pytest.raises(ValueError, match="unknown run-config key"):
        FLConfig.from_run_config({**full, "min-fit": 2})


@pytest.fixture
def task_identity():
    """A Flower runtime sets the run/node ids a Message is stamped with; here the test plays that part."""
    from flwr.supercore.task_identity import TaskIdentity

    names = ("_run_id", "_node_id", "_task_id")
    old = {n: getattr(TaskIdentity, n, None) for n in names}
    TaskIdentity.run_id, TaskIdentity.node_id, TaskIdentity.task_id = 1, 0, 1
    yield
    for n, v in old.items():
        setattr(TaskIdentity, n, v)


def test_server_instructions_round_trip_and_a_device_refuses_an_incomplete_one(task_identity):
    from fedtts.federated.client_app import STATE_KEY, app

    w0 = load_start_model("")
    cfg = FLConfig(dp="off", local_epochs=1)
    sent = cfg.fit_instructions(4, frozen_digest(w0)).to_config()
    keys = {v for k, v in vars(FitKey).items() if k.isupper()} - {FitKey.PROXIMAL_MU}  # FedProx adds that
    assert set(sent) == keys
    got = FitInstructions.from_config(sent)
    assert (got.fl_round, got.local_epochs, got.batch_size, got.dp) == (4, 1, cfg.batch_size, "off")
    assert FitInstructions.from_config({**sent, FitKey.PROXIMAL_MU: 0.1}).proximal_mu == 0.1

    rng = np.random.default_rng(0)
    state = RecordDict()
    state.array_records[STATE_KEY] = ArrayRecord(
        [rng.normal(size=(2, 262)).astype(np.float32), np.zeros(256, np.float32)]
    )
    ctx = Context(run_id=1, node_id=7, node_config={"partition-id": 0}, state=state, run_config={})

    def train(config: dict) -> Message:
        ins = FitIns(ndarrays_to_parameters(federated_arrays(w0, w0)), config)
        msg = Message(compat.fitins_to_recorddict(ins, True), dst_node_id=7, message_type=MessageType.TRAIN)
        return app(msg, ctx)

    assert not train(sent).has_error()  # the complete instructions train
    with pytest.raises(MissingConfigKey, match="'batch-size'"):  # no silent default of 32
        train({k: v for k, v in sent.items() if k != FitKey.BATCH_SIZE})
    with pytest.raises(MissingConfigKey, match="'fedtts-dp'"):  # never unclipped for want of a mode
        train({k: v for k, v in sent.items() if k != FitKey.DP})


def test_device_and_audit_share_one_enrollment_cache(train_manifest, tmp_path, monkeypatch):
    from fedtts.federated import audit_run, client_app, enrollment
    from fedtts.voice.bank import bank_available

    if not bank_available():
        pytest.skip("enrollment needs the style bank (fedtts train bank)")
    monkeypatch.setattr(audit_run, "_cache_root", lambda: tmp_path / "audit")
    by_spk: dict[str, list[str]] = {}
    for r in train_manifest:
        by_spk.setdefault(r["speaker"], []).append(r["abspath"])
    label, clips = next((s, sorted(c)) for s, c in sorted(by_spk.items()) if len(c) >= 3)
    public, private = clips[0], clips[1:3]

    c = audit_run.enroll_client(label, public, private)  # the audit's simulated device
    feats, style, spent = client_app.enroll_cached(private)  # the real device, in its own data folder
    assert c is not None and spent > 0
    np.testing.assert_array_equal(feats, c.features)
    np.testing.assert_array_equal(style, c.style)
    # one key: the same file name in both places, and the audit reads it back without enrolling
    device_file, audit_file = (
        enrollment.style_file(private),
        enrollment.style_file(private, root=tmp_path / "audit"),
    )
    assert device_file.name == audit_file.name and device_file.is_file() and audit_file.is_file()
    assert enrollment.enroll_cached(private, root=tmp_path / "audit").seconds == 0.0
    assert client_app.enroll_cached(private)[2] == 0.0
