"""A parallel corpus generated at run time: dates written as people write them -> ISO dates.

``date_pairs(n, seed)`` draws ``n`` dates between 1950 and 2049 and writes each in one of many
formats and languages (English, French, German, Spanish, Korean, numeric styles), paired with
its ``YYYY-MM-DD`` form, e.g.::

    ("3 March 2021", "2021-03-03")      ("2021년 3월 3일", "2021-03-03")
    ("Wed, Mar 3, 2021", "2021-03-03")  ("3 mars 2021", "2021-03-03")
    ("03/03/2021", "2021-03-03")        ("3. März 2021", "2021-03-03")

Nothing is downloaded; the same seed gives the same pairs. It is the "many-to-many" machine
translation task of an encoder-decoder in miniature: character-level, variable input length,
fixed output length, with words (month and weekday names) to learn.
"""

from __future__ import annotations

import datetime

import numpy as np

_EN_MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August",
              "September", "October", "November", "December"]
_FR_MONTHS = ["janvier", "février", "mars", "avril", "mai", "juin", "juillet", "août",
              "septembre", "octobre", "novembre", "décembre"]
_DE_MONTHS = ["Januar", "Februar", "März", "April", "Mai", "Juni", "Juli", "August",
              "September", "Oktober", "November", "Dezember"]
_ES_MONTHS = ["enero", "febrero", "marzo", "abril", "mayo", "junio", "julio", "agosto",
              "septiembre", "octubre", "noviembre", "diciembre"]
_EN_DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
_KO_DAYS = ["월요일", "화요일", "수요일", "목요일", "금요일", "토요일", "일요일"]


def _formats(d: datetime.date) -> list[str]:
    day, month, year = d.day, d.month, d.year
    en, short = _EN_MONTHS[month - 1], _EN_MONTHS[month - 1][:3]
    weekday = _EN_DAYS[d.weekday()]
    return [
        f"{day} {en} {year}",
        f"{en} {day}, {year}",
        f"{short} {day} {year}",
        f"{day} {short} {year}",
        f"{weekday[:3]}, {short} {day}, {year}",
        f"{weekday}, {day} {en} {year}",
        f"{day:02d}/{month:02d}/{year}",
        f"{year}.{month:02d}.{day:02d}",
        f"{month}/{day}/{str(year)[2:]}",
        f"{day} {_FR_MONTHS[month - 1]} {year}",
        f"{day}. {_DE_MONTHS[month - 1]} {year}",
        f"{day} de {_ES_MONTHS[month - 1]} de {year}",
        f"{year}년 {month}월 {day}일",
        f"{year}년 {month}월 {day}일 {_KO_DAYS[d.weekday()]}",
        f"{str(year)[2:]}.{month}.{day}",
    ]


FORMATS = len(_formats(datetime.date(2000, 1, 1)))


def date_pairs(n: int, seed: int = 0) -> list[tuple[str, str]]:
    """``n`` (human-written date, ISO date) pairs; see the module docstring."""
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}")
    rng = np.random.default_rng(seed)
    start = datetime.date(1950, 1, 1).toordinal()
    stop = datetime.date(2049, 12, 31).toordinal()
    days = rng.integers(start, stop + 1, size=int(n))
    styles = rng.integers(0, FORMATS, size=int(n))
    pairs = []
    for ordinal, style in zip(days, styles):
        date = datetime.date.fromordinal(int(ordinal))
        pairs.append((_formats(date)[int(style)], date.isoformat()))
    return pairs


__all__ = ["date_pairs", "FORMATS"]
