"""The SecAgg+ parameter finder (lepton_secagg.parameters).

The oracle is the pinned table of google/federated-compute
``fcp/secagg/server/graph_parameter_finder_test.cc``: fcp asserts the degree
exactly and the threshold as an upper bound; we do the same (and in fact
reproduce every threshold exactly too).
"""
from __future__ import annotations

import itertools
import math
import time

import pytest

from lepton_secagg import parameters
from lepton_secagg.parameters import (
    MODES,
    _check_degree,
    _find,
    _Hypergeometric,
    _linear_scan,
    find_secagg_plus_parameters,
    full_graph_threshold,
)

SH, SM = "semi-honest", "active"  # fcp CURIOUS_SERVER, SEMI_MALICIOUS_SERVER


def _rows(gamma, delta, mode, values, first_exponent):
    return [
        (10 ** (first_exponent + i), gamma, delta, mode, k, t) for i, (k, t) in enumerate(values)
    ]


# Every feasible row of fcp's graph_parameter_finder_test.cc (NONE-class rows
# are the same as CURIOUS_SERVER ones with gamma = 0 and are omitted).
FCP_TABLE = (
    _rows(0.45, 0.45, SH, [(92, 46), (822, 417), (3494, 1771), (5508, 2788), (6240, 3156)], 2)
    + _rows(0.33, 0.33, SH, [(8, 4), (68, 34), (286, 150), (422, 221), (480, 251), (518, 270)], 1)
    + _rows(0.30, 0.30, SM, [(92, 62), (872, 584), (4822, 3230), (9388, 6286), (11136, 7454)], 2)
    + _rows(0.05, 0.33, SH, [(4, 2), (28, 6), (72, 24), (86, 29), (96, 32), (102, 34)], 1)
    + _rows(0.05, 0.33, SM, [(8, 5), (72, 39), (398, 223), (746, 420), (882, 496), (970, 545)], 1)
    + _rows(0.33, 0.05, SH, [(4, 4), (34, 29), (78, 60), (92, 70), (102, 77), (110, 83)], 1)
    + _rows(0.33, 0.05, SM, [(4, 4), (42, 37), (132, 109), (178, 146), (196, 160), (212, 173)], 1)
    + _rows(0.05, 0.05, SH, [(2, 2), (12, 6), (30, 17), (34, 20), (36, 21), (38, 22)], 1)
    + _rows(0.05, 0.05, SM, [(2, 2), (16, 11), (52, 37), (62, 44), (68, 48), (74, 52)], 1)
    + _rows(0.33, 0.00, SH, [(4, 4), (26, 25), (38, 36), (42, 40), (46, 44), (50, 47)], 1)
    + _rows(0.33, 0.00, SM, [(4, 4), (26, 26), (38, 37), (42, 41), (46, 45), (50, 49)], 1)
    + _rows(0.00, 0.33, SH, [(4, 2), (26, 2), (38, 2), (42, 2), (46, 2), (50, 2)], 1)
    + _rows(0.00, 0.33, SM, [(8, 5), (68, 35), (228, 115), (326, 164), (372, 187), (410, 206)], 1)
    + _rows(0.00, 0.00, SH, [(2, 2)] * 6, 1)
    + _rows(0.00, 0.00, SM, [(2, 2)] * 6, 1)
)


def _id(row):
    n, gamma, delta, mode, _, _ = row
    return f"n={n}-g={gamma}-d={delta}-{mode}"


@pytest.fixture(autouse=True)
def _fresh_cache():
    parameters._find.cache_clear()
    yield


@pytest.mark.parametrize("row", FCP_TABLE, ids=_id)
def test_fcp_table(row):
    n, gamma, delta, mode, k, t = row
    found = find_secagg_plus_parameters(n, gamma, delta, mode)
    assert found is not None
    assert found[0] == k  # fcp: EXPECT_EQ(degree, expected_degree)
    assert 2 <= found[1] <= t  # fcp: EXPECT_LE(threshold, expected_threshold)
    assert found[1] == t  # we match fcp's thresholds exactly as well
    assert found[1] <= k  # fcp: EXPECT_GE(degree, threshold)


def test_whole_fcp_table_is_fast():
    start = time.perf_counter()
    for n, gamma, delta, mode, _, _ in FCP_TABLE:
        find_secagg_plus_parameters(n, gamma, delta, mode)
    elapsed = time.perf_counter() - start
    assert elapsed < 2.0, f"the fcp table took {elapsed:.2f} s"


@pytest.mark.parametrize(
    "n,gamma,delta,mode,expected",
    [
        # The benchmark point derived in anchors-protocols.md section 2.1.
        (1000, 0.05, 0.10, SH, (36, 19)),
        (1000, 0.05, 0.10, SM, (78, 52)),
        (500, 0.05, 0.10, SH, (32, 17)),
        (10_000, 0.05, 0.10, SH, (42, 22)),
        (100_000, 0.05, 0.10, SH, (46, 23)),
    ],
)
def test_derived_points(n, gamma, delta, mode, expected):
    assert find_secagg_plus_parameters(n, gamma, delta, mode) == expected


def test_default_mode_is_semi_honest():
    assert find_secagg_plus_parameters(1000, 0.05, 0.10) == (36, 19)


# -- small cohorts and infeasible instances fall back to the full graph (None) --------


@pytest.mark.parametrize(
    "n,gamma,delta,mode",
    [
        (1, 0.0, 0.0, SH),
        (3, 0.05, 0.05, SH),
        (20, 0.45, 0.45, SH),
        (20, 0.30, 0.30, SM),
        (10, 0.30, 0.30, SM),
        (5, 0.33, 0.33, SH),
        # fcp's Create() rejects these regions outright: gamma + delta > 0.9
        # (semi-honest), gamma + 2 delta > 0.9 (active).
        (1000, 0.5, 0.5, SH),
        (1000, 0.5, 0.5, SM),
        (1000, 0.33, 0.33, SM),
        (10_000, 0.2, 0.4, SM),
    ],
)
def test_returns_none_when_no_sparse_graph_works(n, gamma, delta, mode):
    assert find_secagg_plus_parameters(n, gamma, delta, mode) is None


def test_small_cohort_at_low_rates_still_gets_a_sparse_graph():
    # fcp's method (which we follow) is not size-gated: at n = 20 with 5%
    # corrupt and 10% dropouts (1 + 2 clients) H(20, 4) is 4-connected, so
    # removing 3 nodes can never disconnect it, and t = 2 > 1 corrupt neighbour.
    assert find_secagg_plus_parameters(20, 0.05, 0.10) == (4, 2)


def test_result_is_sparse_and_consistent():
    for n in (10, 50, 100, 1000):
        for gamma, delta, mode in [(0.05, 0.1, SH), (0.1, 0.2, SM), (0.2, 0.2, SH)]:
            found = find_secagg_plus_parameters(n, gamma, delta, mode)
            if found is None:
                continue
            k, t = found
            assert k % 2 == 0 and 2 <= k < n - 1
            assert 2 <= t <= k


# -- the search: skip-ahead == fcp's linear scan -----------------------------------------


def test_feasibility_is_not_monotone_in_k():
    # Why we do not bisect on condition (b): at n = 180, 20% corrupt, 10%
    # dropouts, active mode, k = 68 works but k = 70 does not.
    assert _check_degree(180, 68, 0.2, 0.1, True) is not None
    assert _check_degree(180, 70, 0.2, 0.1, True) is None
    assert _find(180, 0.2, 0.1, True) == _linear_scan(180, 0.2, 0.1, True) == (68, 51)


def test_disconnection_bound_is_monotone_in_k():
    for n, bad in [(100, 30), (1000, 660), (10_000, 9000)]:
        values = [parameters._log_disconnect_bound(n, k, bad) for k in range(2, n - 1, 2)]
        assert all(b <= a for a, b in zip(values, values[1:]))


def test_margin_grows_at_most_as_claimed():
    # The skip-ahead relies on t2 - t1 rising by <= 2 per step of k (<= 1 in
    # active mode); check the claim directly on a range of instances.
    for n, gamma, delta in [(300, 0.1, 0.1), (1000, 0.33, 0.05), (2000, 0.3, 0.3)]:
        corrupt, _, survivors = parameters._counts(n, gamma, delta)
        for active in (False, True):
            previous = None
            for k in range(2, min(n - 1, 600), 2):
                t1, t2 = parameters._thresholds(n, k, corrupt, survivors, active)
                if previous is not None:
                    assert t2 - t1 - previous <= (1 if active else 2)
                previous = t2 - t1


RATES = [0.0, 0.02, 0.05, 0.1, 0.2, 0.3, 0.33, 0.45]


@pytest.mark.parametrize("mode", MODES)
def test_fast_search_equals_linear_scan_small_n(mode):
    active = mode == SM
    for n in list(range(1, 80)) + [97, 128, 181, 250, 333]:
        for gamma, delta in itertools.product(RATES, RATES):
            assert _find(n, gamma, delta, active) == _linear_scan(n, gamma, delta, active), (n, gamma, delta, mode)


@pytest.mark.parametrize("row", [r for r in FCP_TABLE if r[0] <= 1000], ids=_id)
def test_fast_search_equals_linear_scan_on_table(row):
    n, gamma, delta, mode, _, _ = row
    active = mode == SM
    assert _find(n, gamma, delta, active) == _linear_scan(n, gamma, delta, active)


@pytest.mark.slow
@pytest.mark.parametrize("row", [r for r in FCP_TABLE if r[0] > 1000], ids=_id)
def test_fast_search_equals_linear_scan_on_large_rows(row):
    n, gamma, delta, mode, _, _ = row
    active = mode == SM
    assert _find(n, gamma, delta, active) == _linear_scan(n, gamma, delta, active)


# -- the hypergeometric helper --------------------------------------------------------------


def _exact_pmf(total, marked, sampled, x):
    return math.comb(marked, x) * math.comb(total - marked, sampled - x) / math.comb(total, sampled)


@pytest.mark.parametrize("total,marked,sampled", [(50, 10, 12), (200, 130, 40), (1000, 50, 30), (30, 0, 5), (30, 30, 5)])
def test_hypergeometric_cdf_matches_exact_sum(total, marked, sampled):
    law = _Hypergeometric(total, marked, sampled)
    running = 0.0
    for x in range(sampled + 1):
        running += _exact_pmf(total, marked, sampled, x)
        assert law.cdf(x) == pytest.approx(min(running, 1.0), rel=1e-9, abs=1e-15)


def test_hypergeometric_tails_are_accurate_far_out():
    # A 2^-60-ish tail: no cancellation, relative accuracy kept.
    total, marked, sampled = 10_000, 3_300, 400
    law = _Hypergeometric(total, marked, sampled)
    from fractions import Fraction

    exact = sum(Fraction(math.comb(marked, x) * math.comb(total - marked, sampled - x)) for x in range(60 + 1))
    exact /= math.comb(total, sampled)
    assert law.cdf(60) == pytest.approx(float(exact), rel=1e-9)


def test_hypergeometric_quantiles():
    law = _Hypergeometric(1000, 300, 50)
    for q in (1e-12, 1e-6, 0.01, 0.2):
        x = law.quantile(q)
        assert law.cdf(x) < q <= law.cdf(x + 1)
        y = law.quantile(q, complement=True)
        assert 1 - law.cdf(y) < q <= 1 - law.cdf(y - 1)


# -- the full-graph threshold ------------------------------------------------------------------


@pytest.mark.parametrize(
    "n,gamma,delta,mode,expected",
    [
        (10, 0.0, 0.0, SH, 6),
        (11, 0.0, 0.0, SH, 6),
        (20, 0.05, 0.10, SH, 11),
        (20, 0.05, 0.45, SH, 11),  # 11 survivors exactly
        (20, 0.60, 0.0, SH, 13),  # above the 12 corrupt clients
        (2, 0.0, 0.0, SH, 2),
        (1, 0.0, 0.0, SH, 1),
        (20, 0.05, 0.10, SM, 11),  # 2t > 20 + 1
        (100, 0.30, 0.30, SM, 66),  # 2t > 130
        (64, 0.10, 0.20, SM, 36),  # c = ceil(6.4) = 7, 2t > 71
        (100, 0.07, 0.0, SM, 54),  # 0.07 * 100 is 7.000000000000001: c = 7, not 8
    ],
)
def test_full_graph_threshold(n, gamma, delta, mode, expected):
    assert full_graph_threshold(n, gamma, delta, mode) == expected


@pytest.mark.parametrize(
    "n,gamma,delta,mode",
    [
        (20, 0.5, 0.5, SH),  # 10 corrupt, 10 survivors: no t in (10, 10]
        (20, 0.05, 0.50, SH),  # a majority is 11, only 10 survive (this used to cap t at 10, below a majority)
        (20, 0.6, 0.45, SH),
        (100, 0.34, 0.33, SM),  # 2t > 134 needs t = 68, only 67 survive
        (100, 0.3, 0.4, SM),
    ],
)
def test_full_graph_threshold_unreachable(n, gamma, delta, mode):
    with pytest.raises(ValueError, match="survive") as info:
        full_graph_threshold(n, gamma, delta, mode)
    assert str(info.value).endswith(".")


def test_full_graph_threshold_boundary():
    # 2t > 133 needs t = 67, and exactly 67 clients survive.
    assert full_graph_threshold(100, 0.33, 0.33, SM) == 67


# -- argument validation ---------------------------------------------------------------------------


@pytest.mark.parametrize("function", [find_secagg_plus_parameters, full_graph_threshold])
@pytest.mark.parametrize(
    "args,error",
    [
        ((0, 0.1, 0.1), ValueError),
        ((-5, 0.1, 0.1), ValueError),
        ((1000, -0.1, 0.1), ValueError),
        ((1000, 1.0, 0.1), ValueError),
        ((1000, 0.1, 1.0), ValueError),
        ((1000, 0.1, -1.0), ValueError),
        ((1000, float("nan"), 0.1), ValueError),
        ((1000, 0.1, float("inf")), ValueError),
        ((1000, 0.1, 0.1, "malicious"), ValueError),
        ((1000, 0.1, 0.1, None), ValueError),
        ((1000.0, 0.1, 0.1), TypeError),
        ((True, 0.1, 0.1), TypeError),
        ((1000, "0.1", 0.1), TypeError),
        ((1000, 0.1, None), TypeError),
        ((1000, False, 0.1), TypeError),
    ],
)
def test_argument_validation(function, args, error):
    with pytest.raises(error) as info:
        function(*args)
    assert str(info.value).endswith(".")


def test_integer_rates_accepted():
    assert find_secagg_plus_parameters(1000, 0, 0) == (2, 2)
    assert full_graph_threshold(10, 0, 0) == 6


def test_results_are_cached():
    parameters._find.cache_clear()
    find_secagg_plus_parameters(1_000_000, 0.3, 0.3, SM)
    find_secagg_plus_parameters(1_000_000, 0.3, 0.3, SM)
    assert parameters._find.cache_info().hits >= 1
