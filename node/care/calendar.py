"""Working days, for the deadline of a melding (one working day).

Saturdays and Sundays are no working days, nor are public holidays: a list
of dates in the node's configuration ("holidays"), or by default the Dutch
public holidays as python-holidays knows them (Koningsdag, Hemelvaartsdag,
the second days of Easter, Pentecost and Christmas, ...).
"""

from __future__ import annotations

from datetime import date, timedelta

from node.errors import ConfigError


class WorkingDays:
    def __init__(self, holidays: list[str] | None = None, country: str = "NL") -> None:
        self._configured = {date.fromisoformat(d) for d in holidays} if holidays is not None else None
        self._country = country
        self._by_year: dict[int, set[date]] = {}

    def _holidays(self, year: int) -> set[date]:
        if self._configured is not None:
            return self._configured
        if year not in self._by_year:
            # Imported when first needed: ~36 ms of every node's start otherwise, for a termijn few nodes compute.
            import holidays as public_holidays

            self._by_year[year] = set(public_holidays.country_holidays(self._country, years=year))
        return self._by_year[year]

    def is_working_day(self, day: date) -> bool:
        return day.weekday() < 5 and day not in self._holidays(day.year)

    def next_working_day(self, day: date) -> date:
        """The first working day after ``day``: the deadline of something received on ``day``."""
        nxt = day + timedelta(days=1)
        for _ in range(366):  # a configured list could in theory cover a whole year
            if self.is_working_day(nxt):
                return nxt
            nxt += timedelta(days=1)
        raise ConfigError("no working day within a year: check the configured holidays")


__all__ = ["WorkingDays"]
