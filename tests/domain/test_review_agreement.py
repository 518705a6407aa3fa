from __future__ import annotations

from loopml.domain.review import ReviewItem, ReviewStatus, agreement, agrees

DAY_MS = 86_400_000
T = 1_795_000_000_000  # 2026-11-18 11:06 UTC


def answered(version: int, day: int, ok: bool, n: int = 0) -> ReviewItem:
    return ReviewItem(
        deployment="d",
        request_id=f"r{version}-{day}-{n}-{ok}",
        row=0,
        model="m",
        version=version,
        time_ms=T + day * DAY_MS - 5_000,
        inputs={"x": 1},
        output=1,
        confidence=0.2,
        status=ReviewStatus.LABELLED,
        label=1 if ok else 0,
        reviewer="ana",
        labelled_ms=T + day * DAY_MS,
        agrees=ok,
    )


def test_agreement_is_tracked_per_version_and_per_day() -> None:
    items = [
        answered(1, 0, True),
        answered(1, 0, False),
        answered(1, 1, False),
        answered(2, 1, True),
        answered(2, 1, True, n=1),
        # an open item does not count
        ReviewItem("d", "open", 0, "m", 2, T, {"x": 1}, 1, 0.1),
    ]
    result = agreement(items)
    assert (result.answered, result.agreed) == (5, 3)
    assert result.by_version == {1: (3, 1), 2: (2, 2)}
    assert result.by_day == {"2026-11-18": (2, 1), "2026-11-19": (3, 2)}
    assert list(result.by_day) == sorted(result.by_day)


def test_numbers_agree_within_the_tolerance_relative_to_the_label() -> None:
    assert agrees(104.0, 100, tolerance=0.05)
    assert not agrees(106.0, 100, tolerance=0.05)
    assert agrees(0.4, 0, tolerance=0.5)  # at least one unit of slack near zero
    assert agrees("cat", "cat") and not agrees("cat", "dog")
