"""Pairing live findings with offline ones (`core.capacity.offline_check`)."""

from __future__ import annotations

from core.capacity.offline_check import CallAgreement, FindingsCheck, pair_findings


def test_findings_pair_by_item_speaker_and_nearby_start() -> None:
    live = [("greeting", "agent", 0.5), ("rude", "agent", 12.0), ("rude", "agent", 30.0)]
    offline = [("rude", "agent", 12.4), ("greeting", "agent", 0.48), ("rude", "agent", 30.9)]
    assert pair_findings(live, offline) == ([], [])


def test_a_finding_on_one_side_only_is_reported_on_its_side() -> None:
    live = [("rude", "agent", 12.0), ("rude", "customer", 20.0)]
    offline = [("rude", "agent", 12.1), ("rude", "agent", 20.0), ("silence", "", 40.0)]
    only_live, only_offline = pair_findings(live, offline)
    assert only_live == [("rude", "customer", 20.0)]  # the speaker differs
    assert only_offline == [("rude", "agent", 20.0), ("silence", "", 40.0)]


def test_each_finding_pairs_once_with_the_nearest() -> None:
    live = [("rude", "agent", 10.0), ("rude", "agent", 10.8)]
    offline = [("rude", "agent", 10.7)]
    only_live, only_offline = pair_findings(live, offline)
    # 10.0 is taken first (time order) and pairs with 10.7; 10.8 is left with none.
    assert only_live == [("rude", "agent", 10.8)] and only_offline == []
    assert pair_findings([("rude", "agent", 10.0)], [("rude", "agent", 11.5)]) == (
        [("rude", "agent", 10.0)], [("rude", "agent", 11.5)])


def test_a_call_is_the_same_only_with_the_same_findings_and_score() -> None:
    same = CallAgreement("c1", 92.0, 92.0)
    score = CallAgreement("c2", 92.0, 87.0)
    finding = CallAgreement("c3", 92.0, 92.0, only_offline=(("rude", "agent", 3.0),))
    missing = CallAgreement("c4", None, None, error="no recording")
    assert same.same and not score.same and not finding.same and not missing.same
    check = FindingsCheck(lines=8, calls=[same, score, finding, missing])
    assert check.same == 1
    text = check.summary()
    assert text.startswith("findings against offline scoring at 8 lines: 1 of 4 calls the same")
    assert "c2: score 92.0 live, 87.0 offline" in text
    assert "c3: rude (agent, 3.0 s) offline only" in text
    assert "c4: not checked: no recording" in text
    assert check.to_json()["differing"][0].startswith("c2:")
