"""The user-mistakes sweep (tests/mistakes_sweep.py) as a test: no raw, no silent case.

The fast test runs the functional-op and layer/model cases that carry a mistake class
(``Case.cls``; traced only, nothing trains: a few seconds), strictly. The slow one runs every
case that starts no child process (about two minutes on 2 busy cores), strictly too, except the
cases listed in ``LEFT_IN_TRAIN``, which a test of their own checks, strictly too: they are
handled in ``jaxcnn/train/keras.py``, so a failure there points at that file. The sweep's own
machinery (the classifier) is tested on hand-made outcomes, strictly.
"""

import os
import shutil

import pytest

from tests import mistakes_sweep as mistakes

FAST_AREAS = ("functional", "layers")
# Cases handled in jaxcnn/train/keras.py, where `fit`/`evaluate`/`predict` accept or reject what
# they are given (a model class, a model or a History where a state is wanted).
LEFT_IN_TRAIN = frozenset({
    "fit a model class instead of an instance",
    "evaluate(model, ...) instead of a state",
    "evaluate(history, ...) uses history.state",
    "predict(model, x) instead of a state",
    "predict(history, x) uses history.state",
})


def _run(keep):
  cases = [c for c in mistakes.build_cases() if keep(c)]
  assert cases
  results = mistakes.run_all(cases, cli_jobs=0)
  bad = [f"{r['kind']} {r['area']}: {r['name']}: {r['message'][:200]}" for r in results
         if r["kind"] in ("raw", "silent")]
  return results, bad


@pytest.fixture(scope="module", autouse=True)
def _cleanup():
  yield
  shutil.rmtree(mistakes.TMP, ignore_errors=True)


def test_sweep_table_is_large_and_covers_the_issue_classes():
  cases = mistakes.build_cases()
  assert len(cases) >= 200
  assert {c.area for c in cases} == set(mistakes.AREAS)
  assert {str(i) for i in range(1, 12)} <= {c.cls for c in cases}
  assert len({c.name for c in cases}) == len(cases)


def _case(expect="error", names=(), must=False, forbid=()):
  return mistakes.Case("functional", "t", lambda: None, expect, tuple(names), None, "", 1.0,
                       False, must, tuple(forbid))


def test_classifier_on_hand_made_outcomes():
  c = mistakes.classify
  err = _case(names=["groups"])
  assert c(err, exc=ValueError("`groups` (=0) must be an int >= 1"))[0] == "clean"
  assert c(err, exc=ValueError("bad value"))[0] == "raw"  # does not name it
  assert c(err, exc=ZeroDivisionError("groups"))[0] == "raw"  # internal type
  assert c(err, exc=ValueError("groups\nline two"))[0] == "raw"  # two lines
  assert c(err, exc=ValueError("groups " + "x" * mistakes.MAX_LEN))[0] == "raw"  # too long
  assert c(err, value=3)[0] == "silent"
  assert c(_case(names=[("a", "groups")]), exc=TypeError("groups"))[0] == "clean"  # alternatives
  assert c(_case(names=["step"], forbid=["step None"]),
           exc=ValueError("at step None"))[0] == "raw"
  cli = mistakes.cli_outcome((1, "", "W1201 12:00:00.0 1 x.py:1] log\nerror: `groups` (=0)\n"
                                     "(--traceback shows where it was raised)\n", 0.0))
  assert c(err, outcome=cli)[0] == "clean"
  tb = mistakes.cli_outcome((1, "", "Traceback (most recent call last):\n  ...\nKeyError: groups",
                             0.0))
  assert c(err, outcome=tb)[0] == "raw"
  acc = mistakes.Case("functional", "t", lambda: None, "accept", (), lambda v: None if v == 1
                      else "wrong", "", 1.0, False, False, ())
  assert c(acc, value=1) == ("fine", "")
  assert c(acc, value=2)[0] == "silent"
  assert c(acc, exc=ValueError("refused"))[0] == "clean"
  must = dataclasses_replace(acc, must_accept=True)
  assert c(must, exc=ValueError("refused"))[0] == "raw"


def dataclasses_replace(case, **kw):
  import dataclasses
  return dataclasses.replace(case, **kw)


def test_run_case_times_out_and_restores_the_environment():
  import time
  slow = mistakes.Case("functional", "sleeps", lambda: time.sleep(5), "error", (), None, "", 0.3,
                       False, False, ())
  before = os.environ.get("JAXCNN_CACHE_DIR")
  t = time.time()
  (r,) = mistakes.run_all([slow], cli_jobs=0)
  assert r["kind"] == "raw" and "Timeout" in r["message"] and time.time() - t < 3
  assert os.environ.get("JAXCNN_CACHE_DIR") == before


def test_fast_sweep_has_no_raw_or_silent_case():
  _, bad = _run(lambda c: c.area in FAST_AREAS and c.cls)
  assert not bad, "\n".join(bad)


def test_the_cases_left_to_train_exist():
  # A renamed case would otherwise leave LEFT_IN_TRAIN excusing nothing and hiding nothing.
  assert LEFT_IN_TRAIN <= {c.name for c in mistakes.build_cases() if c.area == "keras"}


@pytest.mark.slow
def test_sweep_without_cli_has_no_raw_or_silent_case():
  # Everything in-process; the one child-process case (class 7, slow by nature) is left to the
  # full sweep and the data tests.
  _, bad = _run(lambda c: not c.cli and c.cls != "7" and c.name not in LEFT_IN_TRAIN)
  assert not bad, "\n".join(bad)


@pytest.mark.slow
def test_cases_fixed_last_in_train_are_clean():
  _, bad = _run(lambda c: c.name in LEFT_IN_TRAIN)
  assert not bad, "\n".join(bad)
