"""Every threshold of detection, risk and the alert policy (:class:`DetectorConfig`), and severity bands."""

from __future__ import annotations

from dataclasses import dataclass

from detectors.alerts import Severity

__all__ = ["SEVERITY_ORDER", "DetectorConfig", "severity_of"]

SEVERITY_ORDER = (Severity.LOW, Severity.MEDIUM, Severity.HIGH, Severity.CRITICAL)
SEVERITY_RANK = {s: i for i, s in enumerate(SEVERITY_ORDER)}


@dataclass(frozen=True, slots=True, kw_only=True)
class DetectorConfig:
    """Every threshold of detection, risk and the alert policy (defaults tuned on simulator seeds 1-2).

    Parameters
    ----------
    horizon_days
        Risk is the probability of cancelling within this many days; snapshots are labelled after it.
    baseline_half_life_days
        Memory of the seasonal baselines.
    min_history_days
        Days since an account's first activity before its usage baselines are trusted (warm-up).
    drift_threshold, drift_delta, drift_alpha, drift_min_days
        Page-Hinkley parameters on the daily z-scores (threshold in z units).
    z_clip
        Daily z-scores are clipped to this magnitude.
    recover_ratio, recover_days
        A flagged drop is over when the last 7 days' usage is at least ``recover_ratio`` of the baseline on
        ``recover_days`` consecutive days; until then the baseline is frozen.
    max_freeze_days
        A drop that lasts this long becomes the new normal (the baseline is re-levelled).
    min_expected_events
        Drop ratios are only computed when the baseline expects at least this many events in the window.
    drop_pseudo_count
        Added to actual and expected counts of a drop ratio, so small accounts need more evidence.
    sparse_gap_days
        Accounts whose usual gap between active days is at least this are sparse: silence is judged by the
        gap model (:class:`~detectors.baseline.GapTracker`) and drops over windows of two usual gaps; other
        accounts by the per-weekday/weekend chance of a silent day.
    alert_threshold
        Risk at which an episode opens.
    severity_bands
        Risk at which severity becomes medium, high and critical (below the first: low).
    resolve_threshold, resolve_after_days
        An episode resolves after this many consecutive days with risk below ``resolve_threshold``, usage back
        to ``recover_ratio`` of the baseline and no unusual silence.
    cooldown_days
        No new episode for this long after one resolved.
    min_positives, learning_rate, l2
        The global :class:`~detectors.risk.RiskModel`.
    snapshot_every_days
        How often an account's features are kept as a snapshot to label later (positives and negatives).
    reason_min_logodds, max_reasons
        Reasons are features adding at least this much log-odds, at most ``max_reasons`` of them.
    outage_share, outage_min_accounts, outage_onset_days, outage_min_expected
        The outage guard: an incident when at least ``outage_min_accounts`` and ``outage_share`` of monitored
        accounts went quiet or dropped within ``outage_onset_days``; an account counts as quiet when its
        baseline expected at least ``outage_min_expected`` events since its last activity.
    day_close_delay_ms
        A UTC day counts as complete this long after midnight (room for in-flight events in live mode).
    inactivity_is_churn
        Outcome used to train the risk model: a snapshot is positive when the account cancels within the
        horizon, or (when True) shows no activity at all during the horizon. Keep True for data without
        explicit cancellations (purchase histories); with it False only cancellations count.
    learn_at_horizon
        Learn every outcome only once its snapshot's horizon has closed, positives too
        (:func:`~detectors.outcomes.ripe`): removes the label-timing bias that made the learned regression
        rank ChurnSim worse than chance, but learns positives up to ``horizon_days`` later. Off by default:
        on the tuning data it cost AUC (shapes-tuning 0.829 -> 0.786, simulator 0.824 -> 0.812;
        ``docs/detection.md``, fifth pass).
    relative_tenure
        ``new_account`` compares the account's tenure with the base's that day
        (:meth:`~detectors.population.PopulationModel.new_account`) rather than reading it alone: a base
        that ages as a whole does not move it (``docs/detection.md``, seventh pass; a tie on the tuning
        data, on by default).
    relative_trends
        ``trend_4w`` / ``trend_8w`` are what the account loses beyond the base's mean downtrend that day
        (:meth:`~detectors.population.PopulationModel.trend`): a base starting together gets its trends all
        at once, and a decline shared by the whole base is not one account's news. Off by default: a tie on
        the tuning data (simulator 0.825 -> 0.824, shapes-tuning 0.829 -> 0.830), but with it the answers'
        gain in ``tests/test_answer_learning.py`` was no longer significant (``docs/detection.md``, seventh
        pass).
    silence_outcomes
        The ``silence`` feature is weighed by the share of the base's silent spells as long as the
        account's (in its usual gaps) that did not come back within the horizon, learned online from the
        base (:class:`~detectors.spells.SpellOutcomes`). Off by default: on 3 files of each tuning source it
        cost the simulator AUC (-0.008 +- 0.003 paired) and left vacation alerts where they were (shapes:
        94 %); the tuning shapes' vacations are dips broken by sporadic events, not long silences
        (``docs/detection.md``, eighth pass).
    drop_outcomes
        The same for a flagged sustained drop: while one is flagged, ``usage_drop``, ``users_drop``,
        ``key_drop`` and ``drop_weeks`` are weighed by the share of the base's flagged drops as old that
        did not recover (the account cancelled within the horizon, or went silent for all of it). Off: with
        ``silence_outcomes`` it cost AUC (simulator -0.021 +- 0.008, shapes-tuning -0.006 +- 0.003).
    spell_hold
        Open no episode while the account is in a silent spell or a flagged drop that, at its length, in
        this base usually (more often than not) ended in a return or a recovery
        (:meth:`~detectors.population.PopulationModel.usually_back`). Risk is unchanged (so is ranking);
        only the alert waits until the spell has outlasted the base's usual returns. Off by default (eighth
        pass: on the tuning data vacation accounts alerted 43 -> 13 % and 93 -> 54 %, for fewer churners
        flagged 7 days ahead, 71 -> 54 % and 56 -> 47 %; at the same budget of non-churner alerts, raising
        ``alert_threshold`` to 0.75 flagged more churners on the simulator, 63 %: a trade of drop churners
        for vacations, not a better detector; and the lock-step replay, ``--jobs``, cannot follow spells).
    alert_budget
        At most this many new episodes per account per 30 days, as the base's recent risk shows
        (:class:`~detectors.budget.AlertBudget`): the opening threshold is raised, each day, to the lowest
        level (from ``alert_threshold`` up) that the base's accounts without an episode recently crossed no
        more often than this. None (the default): ``alert_threshold`` alone decides, so the alert volume
        follows the base's shape. Off by default for the lead to decide (ninth pass: at 0.05 on the tuning
        data non-churner alerts 3.91 -> 2.43 % and 6.91 -> 4.65 % per 30 days, churners flagged 7 days ahead
        71 -> 68 % and 56 -> 49 %, 1.6 and 0.9 points more than a plain threshold raise to the same volume,
        AUC unchanged; ``docs/detection.md``).
    monthly_cycles
        Accounts busy at one time of each month (:class:`~detectors.cycle.MonthlyCycle`) are not judged by
        their absence while on schedule: while such an account was active in or after its last busy window
        that is over, the features that read absence (drops, decline, silence, recency, trends, BTYD) are
        left out; level, support and billing still count. Once a busy window passes without it, it is
        judged as before. On by default since the tenth pass (``docs/detection.md``): on the tuning data a
        tie on the simulator and shapes-tuning (AUC +0.000 and -0.001), on the mid-month tuning shapes AUC
        +0.004 and non-churner alerts 6.8 -> 6.1 %; on the held-out `plain` shapes, which decided it, AUC
        0.802 -> 0.809 and non-churner alerts 8.2 -> 6.9 % per 30 days.
    refit_every
        Refit the risk model's ``learned`` regression in batch every this many outcomes, on a class-balanced
        sample of the labelled outcomes (:class:`~detectors.refit.RefitSample`: 500 positives, 1,500
        negatives, an L2 logistic regression by IRLS), instead of one SGD step per outcome (SGD still
        learns until the sample holds 30 of each class); 0: SGD only, as before. 200 by default since
        the eleventh pass (``docs/detection.md``): on the tuning data AUC +0.019 and +0.010 on the shapes,
        -0.002 on the simulator, churners flagged 7 days ahead +3 to +7 points with fewer non-churner
        alerts; on the held-out `smb` shapes, which confirmed it, AUC 0.775 -> 0.812.
    refit_keeps_sgd, refit_sgd_gate
        With refits on, an SGD regression over the same inputs keeps learning every outcome beside the
        refitted one and is the mixture's expert ``sgd`` from the first fit on, with a say only while the
        refitted regression's mean prediction is off the outcome rate by more than ``refit_sgd_gate`` (None:
        always): the fit takes its intercept from every outcome its sample holds, so on a base whose churn
        rate moves it predicts the wrong level (ChurnSim: 0.056 against 0.018) and loses the mixture while
        ranking well; SGD follows. On by default since issue 14's sixteenth pass (``docs/detection.md``):
        on the tuning data and the clean held-out `thin` shapes no ranking changed by more than 0.002 (the
        gate opened on 4 of 30 tuning files), and on ChurnSim, *seen* in every pass, AUC 0.624 -> 0.682;
        ungated (fifteenth pass) it cost the tuning shapes 0.010 AUC.
    """

    horizon_days: int = 30
    baseline_half_life_days: float = 28.0
    min_history_days: int = 14
    drift_threshold: float = 6.0
    drift_delta: float = 0.5
    drift_alpha: float = 0.98
    drift_min_days: int = 7
    z_clip: float = 4.0
    recover_ratio: float = 0.8
    recover_days: int = 5
    max_freeze_days: int = 56
    min_expected_events: float = 5.0
    drop_pseudo_count: float = 5.0
    sparse_gap_days: float = 2.5
    gap_half_life: float = 12.0
    alert_threshold: float = 0.5
    severity_bands: tuple[float, float, float] = (0.45, 0.6, 0.8)
    resolve_threshold: float = 0.15
    resolve_after_days: int = 7
    cooldown_days: int = 14
    min_positives: int = 30
    learning_rate: float = 0.05
    l2: float = 1e-4
    snapshot_every_days: int = 7
    reason_min_logodds: float = 0.4
    max_reasons: int = 4
    outage_share: float = 0.3
    outage_min_accounts: int = 20
    outage_onset_days: int = 4
    outage_min_expected: float = 5.0
    day_close_delay_ms: int = 0
    inactivity_is_churn: bool = True
    learn_at_horizon: bool = False
    relative_tenure: bool = True
    relative_trends: bool = False
    silence_outcomes: bool = False
    drop_outcomes: bool = False
    spell_hold: bool = False
    alert_budget: float | None = None
    monthly_cycles: bool = True
    refit_every: int = 200
    refit_keeps_sgd: bool = True
    refit_sgd_gate: float | None = 1.5

    @property
    def sgd_beside_refits(self) -> bool:
        """Whether the risk model keeps its ``sgd`` expert: with refits only (``refit_keeps_sgd``)."""
        return self.refit_keeps_sgd and self.refit_every > 0

    @property
    def follows_spells(self) -> bool:
        """Whether accounts' silent spells and flagged drops are followed for the base's spell outcomes
        (only an option that reads them pays for them).

        >>> DetectorConfig().follows_spells, DetectorConfig(spell_hold=True).follows_spells
        (False, True)
        """
        return self.spell_hold or self.silence_outcomes or self.drop_outcomes


def severity_of(risk: float, bands: tuple[float, float, float]) -> Severity:
    """The severity of ``risk`` under ``bands`` (where medium, high and critical begin).

    >>> severity_of(0.5, (0.45, 0.6, 0.8)).value, severity_of(0.1, (0.45, 0.6, 0.8)).value
    ('medium', 'low')
    """
    if risk >= bands[2]:
        return Severity.CRITICAL
    if risk >= bands[1]:
        return Severity.HIGH
    if risk >= bands[0]:
        return Severity.MEDIUM
    return Severity.LOW
