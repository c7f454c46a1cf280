"""The pure parts of checkpoints: spec checks, PBT's rounds, lineage, the trial pod's mounts
and env, and how an evicted, preempted or lost pod maps onto a retry."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from kubetune.engine import TrialLaunch, TrialView, decide
from kubetune.lineage import Continuation, continuation
from kubetune.search import Observation, PbtSuggester
from kubetune.spec import SpecError, TrialState, TuningJob
from kubetune_operator.builders import build_checkpoint_claim, build_trial, build_trial_pod
from kubetune_operator.status import observe_trial

from .conftest import make_spec, manifest
from .test_builders import JOB

NOW = "2026-12-06T10:00:00Z"
PBT = {
    "name": "pbt",
    "seed": 1,
    "settings": {"populationSize": 4, "perturbationInterval": 3, "truncation": 0.25},
}
RESOURCE = {"name": "epochs", "min": 1, "max": 9}


def errors(spec: dict[str, Any]) -> list[str]:
    with pytest.raises(SpecError) as caught:
        TuningJob.parse(manifest(spec))
    return [str(e) for e in caught.value.errors]


def base(**extra: Any) -> dict[str, Any]:
    return {
        "objective": {"metric": "acc", "direction": "maximize"},
        "parameters": [{"name": "lr", "type": "float", "min": 1e-4, "max": 0.3, "scale": "log"}],
        "algorithm": {"name": "random"},
        **extra,
    }


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        (base(algorithm=PBT, resource=RESOURCE, maxTrials=12), "spec.checkpoints: required by pbt"),
        (
            base(algorithm=PBT, resource=RESOURCE, maxTrials=11, checkpoints={}),
            "spec.maxTrials: pbt needs populationSize x rounds = 4 x 3 = 12 trials",
        ),
        (base(algorithm=PBT, checkpoints={}, maxTrials=12), "spec.resource: required by pbt"),
        (
            base(
                parallelism=2,
                checkpoints={"storage": {"volumeClaimTemplate": {"size": "1Gi"}}},
            ),
            "spec.checkpoints.storage.volumeClaimTemplate.accessModes: a ReadWriteOnce claim "
            "mounts on one node only, but parallelism is 2",
        ),
        (
            base(
                checkpoints={
                    "storage": {
                        "persistentVolumeClaim": {"claimName": "c"},
                        "volumeClaimTemplate": {},
                    }
                }
            ),
            "spec.checkpoints.storage.persistentVolumeClaim: give exactly one",
        ),
        (
            base(
                checkpoints={"keep": 0},
            ),
            "spec.checkpoints.keep: Input should be greater than or equal to 1",
        ),
        (
            base(
                checkpoints={},
                trialTemplate={
                    "spec": {
                        "containers": [
                            {
                                "name": "t",
                                "volumeMounts": [
                                    {"name": "x", "mountPath": "/data"},
                                    {"name": "y", "mountPath": "/kubetune/checkpoints"},
                                ],
                            }
                        ]
                    }
                },
            ),
            "spec.trialTemplate.spec.containers[0].volumeMounts[1].mountPath: "
            "/kubetune/checkpoints is where kubetune mounts checkpoints",
        ),
    ],
)
def test_bad_checkpoint_specs_name_the_field(spec: dict[str, Any], expected: str) -> None:
    found = errors(spec)
    assert any(e.startswith(expected) for e in found), found


def test_a_read_write_once_claim_serves_parallel_trials_that_share_a_node() -> None:
    storage = {"volumeClaimTemplate": {"size": "1Gi"}}
    spec = base(parallelism=2, checkpoints={"storage": storage, "trialsShareNode": True})
    assert TuningJob.parse(manifest(spec)).spec.checkpoints is not None


def pbt_spec() -> Any:
    return make_spec(
        "pbt",
        parameters=[
            {"name": "lr", "type": "float", "min": 1e-4, "max": 0.3, "scale": "log"},
            {"name": "units", "type": "int", "min": 16, "max": 64},
            {"name": "act", "type": "categorical", "values": ["relu", "gelu", "tanh"]},
        ],
        settings=PBT["settings"],
        seed=1,
        resource=RESOURCE,
        maxTrials=12,
        checkpoints={},
        objective={"metric": "acc", "direction": "maximize"},
    )


def test_pbt_waits_for_each_round_then_the_weak_copy_the_strong() -> None:
    spec = pbt_spec()
    pbt = PbtSuggester(spec)
    first = pbt.suggest([], 10)
    assert len(first) == 4 and {p["epochs"] for p in first} == {3}
    running = [Observation(p, None, TrialState.running) for p in first]
    assert pbt.suggest(running, 4) == []  # the round is not over
    values = [0.5, 0.9, 0.7, 0.2]  # member 3 is the weakest, member 1 the strongest
    done = [Observation(p, v, TrialState.succeeded) for p, v in zip(first, values, strict=True)]
    second = pbt.suggest(done, 4)
    assert second == PbtSuggester(spec).suggest(done, 4)  # replayable
    assert [p["epochs"] for p in second] == [6] * 4
    plans = [pbt.plan(done, 4 + m) for m in range(4)]
    assert [p.parent for p in plans if p] == [0, 1, 2, 1]  # the weakest continues the strongest
    assert plans[3] is not None and plans[3].exploited
    for m in range(3):  # the others go on unchanged
        assert second[m] == {**first[m], "epochs": 6}
    explored = second[3]
    assert explored != {**first[1], "epochs": 6}
    assert 1e-4 <= explored["lr"] <= 0.3 and 16 <= explored["units"] <= 64
    assert explored["act"] in ("relu", "gelu", "tanh")
    later = done + [Observation(p, 0.9, TrialState.succeeded) for p in second]
    later += [Observation({**p, "epochs": 9}, 0.9, TrialState.succeeded) for p in second]
    assert pbt.suggest(later, 4) == []  # 3 rounds of 3 epochs reach resource.max


def trial(i: int, params: dict[str, Any], state: str = "succeeded", last: int = 3) -> TrialView:
    return TrialView(f"j-{i}", i, params, TrialState(state), [(s, 0.5) for s in range(1, last + 1)])


def test_a_pbt_member_continues_its_parent_from_its_last_step() -> None:
    spec = pbt_spec()
    first = PbtSuggester(spec).suggest([], 4)
    views = [trial(i, p) for i, p in enumerate(first)]
    history = [Observation(p, 0.5 + i / 10) for i, p in enumerate(first)]
    assert continuation(spec, views, history, 5, {}) == Continuation("j-1", 3)  # its own line
    assert continuation(spec, views, history, 7, {}) == Continuation("j-3", 3)
    assert continuation(spec, views, history, 4, {}) == Continuation("j-3", 3)  # the weakest


def test_hyperband_promotions_continue_only_with_checkpoints() -> None:
    params = {"lr": 0.01}
    views = [trial(0, {**params, "epochs": 1}, last=1), trial(1, {**params, "epochs": 3})]
    views.append(trial(2, {"lr": 0.02, "epochs": 3}))
    views.append(trial(3, {**params, "epochs": 3}, state="failed"))
    hyperband = {"parameters": [{"name": "lr", "type": "float", "min": 1e-4, "max": 0.3}]}
    with_checkpoints = make_spec("hyperband", checkpoints={}, **hyperband)
    promoted = {**params, "epochs": 9}
    assert continuation(with_checkpoints, views, [], 4, promoted) == Continuation("j-1", 3)
    assert continuation(make_spec("hyperband", **hyperband), views, [], 4, promoted) is None


def test_the_engine_launches_the_next_pbt_round_with_its_parents() -> None:
    spec = pbt_spec()
    first = PbtSuggester(spec).suggest([], 4)
    views = [trial(i, p) for i, p in enumerate(first)]
    decision = decide("j", spec.model_copy(update={"parallelism": 4}), views)
    parents = [launch.continues.trial for launch in decision.start if launch.continues]
    assert parents == [
        "j-0",
        "j-1",
        "j-2",
        "j-0",
    ]  # a tie ranks by member: the last copies the first
    assert [launch.budget for launch in decision.start] == [6.0] * 4


# -- the operator ------------------------------------------------------------------------------


def job_with(checkpoints: dict[str, Any]) -> dict[str, Any]:
    job = copy.deepcopy(JOB)
    job["spec"]["checkpoints"] = checkpoints
    job["metadata"]["generation"] = len(str(checkpoints))
    return job


def test_a_trial_pod_mounts_its_own_directory_and_its_parents_read_only() -> None:
    job = job_with({"keep": 3, "storage": {"persistentVolumeClaim": {"claimName": "shared"}}})
    launch = TrialLaunch("mnist-5", 5, {"lr": 0.01, "opt": "adam", "epochs": 9}, 9.0)
    parent = TrialLaunch("mnist-5", 5, launch.params, 9.0, Continuation("mnist-2", 3))
    for made, resume in ((launch, None), (parent, "3")):
        trial = build_trial(job, made)
        trial["metadata"]["uid"] = "u"
        pod = build_trial_pod(job, trial, "10.0.0.1:1")
        volumes = pod["spec"]["volumes"]
        assert volumes == [
            {"name": "kubetune-checkpoints", "persistentVolumeClaim": {"claimName": "shared"}}
        ]
        trainer = pod["spec"]["containers"][1]
        env = {e["name"]: e.get("value") for e in trainer["env"]}
        assert env["KUBETUNE_CHECKPOINT_DIR"] == "/kubetune/checkpoints"
        assert env["KUBETUNE_CHECKPOINT_KEEP"] == "3"
        assert env.get("KUBETUNE_RESUME_STEP") == resume
        mounts = trainer["volumeMounts"]
        assert mounts[0] == {
            "name": "kubetune-checkpoints",
            "mountPath": "/kubetune/checkpoints",
            "subPath": "mnist-5",
        }
        if resume:
            assert mounts[1]["subPath"] == "mnist-2" and mounts[1]["readOnly"] is True
            assert env["KUBETUNE_RESUME_DIR"] == "/kubetune/resume"
        assert "volumeMounts" not in pod["spec"]["containers"][0]  # the sidecar's untouched
    trial["status"] = {"resumeStep": 7}  # a retry resumes from its own last step
    pod = build_trial_pod(job, trial, "10.0.0.1:1")
    env = {e["name"]: e.get("value") for e in pod["spec"]["containers"][1]["env"]}
    assert env["KUBETUNE_RESUME_STEP"] == "7"


def test_a_claim_template_is_owned_by_the_job_unless_retained() -> None:
    template = {"volumeClaimTemplate": {"storageClassName": "fast", "size": "50Gi"}}
    job = job_with({"storage": template})
    spec = TuningJob.parse(job).spec
    assert spec.checkpoints is not None
    claim = build_checkpoint_claim(job, spec.checkpoints)
    assert claim["metadata"]["name"] == "mnist-checkpoints"
    assert claim["spec"] == {
        "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": "50Gi"}},
        "storageClassName": "fast",
    }
    assert claim["metadata"]["ownerReferences"][0]["uid"] == "job-uid"
    kept = build_checkpoint_claim(job, spec.checkpoints.model_copy(update={"retain": True}))
    assert "ownerReferences" not in kept["metadata"]


def running_trial(**status: Any) -> dict[str, Any]:
    curve = [{"step": s, "value": 0.5} for s in (1, 2, 3)]
    return {
        "metadata": {"name": "t-0"},
        "spec": {"params": {"lr": 0.1}, "index": 0},
        "status": {"phase": "Running", "curve": curve, **status},
    }


def pod(phase: str = "Running", deleting: bool = False, **status: Any) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": "t-0"}
    if deleting:
        meta["deletionTimestamp"] = NOW
    return {"metadata": meta, "status": {"phase": phase, **status}}


EVICTED = {"conditions": [{"type": "DisruptionTarget", "status": "True", "reason": "Eviction"}]}


@pytest.mark.parametrize(
    ("the_pod", "why"),
    [
        (pod(deleting=True, **EVICTED), "Eviction"),
        (pod("Failed", reason="Evicted", message="low on memory"), "Evicted"),
        (pod("Failed", deleting=True, **EVICTED), "Eviction"),
        (None, "PodLost"),
    ],
)
def test_a_disrupted_trial_retries_from_its_last_step(the_pod: Any, why: str) -> None:
    seen = observe_trial(running_trial(), the_pod, NOW, retries=2)
    assert seen.state is TrialState.pending
    assert seen.status_patch is not None
    assert seen.status_patch["retries"] == 1 and seen.status_patch["resumeStep"] == 3
    assert seen.status_patch["reason"] == "Retrying" and why in seen.status_patch["message"]
    used = observe_trial(running_trial(retries=2), the_pod, NOW, retries=2)
    assert used.state is TrialState.failed and used.status_patch is not None
    assert (
        used.status_patch["reason"] == why and "retries are used up" in used.status_patch["message"]
    )


def test_a_retrying_trial_waits_for_the_old_pod_then_gets_a_new_one() -> None:
    retrying = running_trial(retries=1, resumeStep=3, reason="Retrying")
    retrying["status"]["phase"] = "Pending"
    old = pod(deleting=True, **EVICTED)
    assert not observe_trial(retrying, old, NOW, 2).needs_pod
    assert observe_trial(retrying, old, NOW, 2).state is TrialState.pending
    assert observe_trial(retrying, None, NOW, 2).needs_pod
    running = observe_trial(retrying, pod(), NOW, 2)
    assert running.state is TrialState.running and running.status_patch is not None
    assert running.status_patch["reason"] is None  # no longer retrying


def test_a_trial_that_fails_by_itself_still_fails_with_its_termination_message() -> None:
    terminated = {"exitCode": 1, "reason": "Error", "message": "cannot save: No space left"}
    statuses = [{"name": "trainer", "state": {"terminated": terminated}}]
    seen = observe_trial(running_trial(), pod("Failed", containerStatuses=statuses), NOW, 2)
    assert seen.state is TrialState.failed and seen.status_patch is not None
    assert seen.status_patch["message"].startswith("cannot save: No space left (container")
    oom = {"exitCode": 137, "reason": "OOMKilled"}
    statuses = [{"name": "trainer", "state": {"terminated": oom}}]
    seen = observe_trial(running_trial(), pod("Failed", containerStatuses=statuses), NOW, 2)
    assert seen.state is TrialState.failed  # OOMKilled is the trial's own failure
