"""The generated words of a segment, in English and Bahasa Indonesia: its name and description.

Both are made from the segment's statistics only (``contracts.clusters``): the features whose
mean is furthest from the average device (high or low, and by how much), the share of efficient
devices against the overall share, and the device-type mix. So ``analyze_clusters.py`` can
regenerate them from ``clusters.json`` alone, and the UI never shows hand-copied text.
"""

from __future__ import annotations

from dataclasses import dataclass

from smarthome.contracts.clusters import LANGUAGES, Overall, Segment
from smarthome.contracts.records import NUMERIC_FEATURES

#: a feature is a trait of a segment when its mean is this many overall std-devs off the mean
TRAIT_Z = 0.3
MAX_TRAITS = 3
#: a segment whose largest device type holds at most this share is "every type"
MIXED_SHARE = 0.4

#: (above average, below average) wording per feature and language
TRAITS: dict[str, dict[str, tuple[str, str]]] = {
    "en": {
        "UsageHoursPerDay": ("heavy daily use", "light daily use"),
        "EnergyConsumption": ("high energy use", "low energy use"),
        "UserPreferences": ("user preferences mostly on", "user preferences mostly off"),
        "MalfunctionIncidents": ("frequent malfunctions", "few malfunctions"),
        "DeviceAgeMonths": ("older devices", "newer devices"),
    },
    "id": {
        "UsageHoursPerDay": ("pemakaian harian tinggi", "pemakaian harian rendah"),
        "EnergyConsumption": ("konsumsi energi tinggi", "konsumsi energi rendah"),
        "UserPreferences": (
            "preferensi pengguna sebagian besar aktif",
            "preferensi pengguna sebagian besar mati",
        ),
        "MalfunctionIncidents": ("sering rusak", "jarang rusak"),
        "DeviceAgeMonths": ("perangkat lebih tua", "perangkat lebih baru"),
    },
}
UNITS: dict[str, dict[str, str]] = {
    "en": {
        "UsageHoursPerDay": " h/day",
        "EnergyConsumption": " kWh/day",
        "DeviceAgeMonths": " months",
    },
    "id": {
        "UsageHoursPerDay": " jam/hari",
        "EnergyConsumption": " kWh/hari",
        "DeviceAgeMonths": " bulan",
    },
}
#: every other phrase, per language
WORDS: dict[str, dict[str, str]] = {
    "en": {
        "segment": "Segment {id} ({share} of devices)",
        "empty": "Segment {id}: no device in the training data.",
        "average": "close to the average device on every feature",
        "name_average": "close to the average device",
        "above": "above",
        "below": "below",
        "trait": "{trait} ({value}, {diff} the average {base})",
        "pref": "{share} on",
        "points": "{n} points",
        "rate_vs": "{rate} efficient, {diff} the overall {overall}",
        "rate_same": "{rate} efficient, as overall",
        "all": "all {type}",
        "mostly": "mostly {type} ({share})",
        "mixed": "every device type, {shares} each",
        "some": "mainly {mix}",
        "name_rate": "{rate} efficient",
    },
    "id": {
        "segment": "Segmen {id} ({share} perangkat)",
        "empty": "Segmen {id}: tidak ada perangkat dalam data latih.",
        "average": "mendekati rata-rata perangkat pada setiap fitur",
        "name_average": "mendekati rata-rata perangkat",
        "above": "di atas",
        "below": "di bawah",
        "trait": "{trait} ({value}, {diff} rata-rata {base})",
        "pref": "{share} aktif",
        "points": "{n} poin",
        "rate_vs": "{rate} efisien, {diff} keseluruhan {overall}",
        "rate_same": "{rate} efisien, sama dengan keseluruhan",
        "all": "semuanya {type}",
        "mostly": "sebagian besar {type} ({share})",
        "mixed": "semua jenis perangkat, masing-masing {shares}",
        "some": "terutama {mix}",
        "name_rate": "{rate} efisien",
    },
}


@dataclass(frozen=True)
class Trait:
    """A feature that sets a segment apart: its mean ``z`` overall std-devs off the average."""

    feature: str
    z: float
    mean: float
    overall: float

    @property
    def high(self) -> bool:
        return self.z > 0


def traits(segment: Segment, overall: Overall) -> list[Trait]:
    """The features at least :data:`TRAIT_Z` std-devs off the average, furthest first."""
    found = []
    for feature in NUMERIC_FEATURES:
        mean, std = segment.means[feature], overall.stds[feature]
        if mean is None or std <= 0:
            continue
        z = (mean - overall.means[feature]) / std
        if abs(z) >= TRAIT_Z:
            found.append(Trait(feature, z, mean, overall.means[feature]))
    return sorted(found, key=lambda t: -abs(t.z))[:MAX_TRAITS]


def _number(value: float, digits: int, lang: str) -> str:
    text = f"{value:,.{digits}f}"
    if lang == "id":  # Indonesian: comma decimals, dot thousands
        text = text.replace(",", "\0").replace(".", ",").replace("\0", ".")
    return text


def _percent(share: float, lang: str) -> str:
    return f"{_number(share * 100, 0, lang)}%"


def _plural(device_type: str, lang: str) -> str:
    if lang != "en" or device_type.endswith("s"):
        return device_type
    return f"{device_type}s"


def _value(feature: str, value: float, lang: str) -> str:
    if feature == "UserPreferences":
        return WORDS[lang]["pref"].format(share=_percent(value, lang))
    digits = (
        1 if feature in ("UsageHoursPerDay", "EnergyConsumption", "MalfunctionIncidents") else 0
    )
    return f"{_number(value, digits, lang)}{UNITS[lang].get(feature, '')}"


def _difference(trait: Trait, lang: str) -> str:
    """How far the segment's mean is from the average: points of a 0/1 share, else percent."""
    words = WORDS[lang]
    side = words["above"] if trait.high else words["below"]
    if trait.feature == "UserPreferences" or not trait.overall:
        points = abs(trait.mean - trait.overall) * (
            100 if trait.feature == "UserPreferences" else 1
        )
        return f"{words['points'].format(n=_number(points, 0, lang))} {side}"
    return f"{_percent(abs(trait.mean - trait.overall) / abs(trait.overall), lang)} {side}"


def _trait(trait: Trait, lang: str) -> str:
    return WORDS[lang]["trait"].format(
        trait=TRAITS[lang][trait.feature][0 if trait.high else 1],
        value=_value(trait.feature, trait.mean, lang),
        diff=_difference(trait, lang),
        base=_value(trait.feature, trait.overall, lang),
    )


def _efficiency(segment: Segment, overall: Overall, lang: str) -> str:
    words = WORDS[lang]
    rate, base = _percent(segment.efficiency_rate, lang), _percent(overall.efficiency_rate, lang)
    points = round(abs(segment.efficiency_rate - overall.efficiency_rate) * 100)
    if not points:
        return words["rate_same"].format(rate=rate)
    side = words["above"] if segment.efficiency_rate > overall.efficiency_rate else words["below"]
    diff = f"{words['points'].format(n=points)} {side}"
    return words["rate_vs"].format(rate=rate, diff=diff, overall=base)


def _mix(segment: Segment, lang: str) -> str:
    """The device-type mix: all / mostly one type, every type, or the main ones."""
    words = WORDS[lang]
    ranked = sorted(segment.device_type_shares.items(), key=lambda kv: (-kv[1], kv[0]))
    top_type, top_share = ranked[0]
    if top_share >= 0.995:
        return words["all"].format(type=_plural(top_type, lang))
    if top_share >= 0.8:
        return words["mostly"].format(type=_plural(top_type, lang), share=_percent(top_share, lang))
    if top_share <= MIXED_SHARE and all(s > 0 for _, s in ranked):
        low, high = _percent(ranked[-1][1], lang), _percent(top_share, lang)
        # an ASCII hyphen: clusters.json stays plain ASCII, searchable as written
        return words["mixed"].format(shares=high if low == high else f"{low[:-1]}-{high}")
    shares = [f"{_plural(t, lang)} {_percent(s, lang)}" for t, s in ranked if s > 0]
    return words["some"].format(mix=", ".join(shares[:3]))


def describe(segment: Segment, overall: Overall, lang: str = "en") -> str:
    """One sentence: what sets the segment apart (high or low features, by how much), its
    efficient share against the overall one, and its device-type mix."""
    words = WORDS[lang]
    if not segment.size:
        return words["empty"].format(id=segment.id)
    found = traits(segment, overall)
    how = ", ".join(_trait(t, lang) for t in found) if found else words["average"]
    head = words["segment"].format(id=segment.id, share=_percent(segment.share, lang))
    return f"{head}: {how}; {_efficiency(segment, overall, lang)}; {_mix(segment, lang)}."


def name(segment: Segment, overall: Overall, lang: str = "en") -> str:
    """A few words: the two strongest traits and the efficient share."""
    words = WORDS[lang]
    if not segment.size:
        text = words["empty"].format(id=segment.id).split(": ", 1)[1].rstrip(".")
    else:
        found = traits(segment, overall)[:2]
        what = ", ".join(TRAITS[lang][t.feature][0 if t.high else 1] for t in found)
        rate = words["name_rate"].format(rate=_percent(segment.efficiency_rate, lang))
        text = f"{what or words['name_average']}: {rate}"
    return text[0].upper() + text[1:]


def words_of(segment: Segment, overall: Overall) -> dict[str, object]:
    """The generated fields of ``segment``: ``description`` (English), ``name`` and
    ``descriptions`` in every language."""
    return {
        "description": describe(segment, overall, "en"),
        "name": {lang: name(segment, overall, lang) for lang in LANGUAGES},
        "descriptions": {lang: describe(segment, overall, lang) for lang in LANGUAGES},
    }
