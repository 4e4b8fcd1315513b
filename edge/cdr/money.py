"""Amounts of money as exact decimals: how many decimals a currency has, and
how an amount is written (pure).

ISO 4217 gives every currency its minor unit: a euro has cents (2 decimals),
a yen has none, a Kuwaiti dinar has fils (3). A price is rounded once, to the
currency's minor unit, at the end; the parts it is made of stay exact.
"""

from __future__ import annotations

from decimal import ROUND_CEILING, ROUND_HALF_UP, Decimal

# ISO 4217 minor units of the currencies that differ from 2, among those in use for
# charging; every other code has 2 (EUR, USD, GBP, CHF, SEK, NOK, DKK, PLN, CZK, HUF, ...).
MINOR_UNITS: dict[str, int] = {
    # no minor unit
    "JPY": 0, "KRW": 0, "ISK": 0, "CLP": 0, "VND": 0, "PYG": 0, "UGX": 0, "XAF": 0, "XOF": 0, "XPF": 0,
    "KMF": 0, "GNF": 0, "RWF": 0, "VUV": 0, "DJF": 0, "BIF": 0,
    # three decimals
    "KWD": 3, "BHD": 3, "OMR": 3, "JOD": 3, "TND": 3, "LYD": 3, "IQD": 3,
}
DEFAULT_MINOR_UNIT = 2


def minor_unit(currency: str) -> int:
    return MINOR_UNITS.get(currency.upper(), DEFAULT_MINOR_UNIT)


def quantum(currency: str) -> Decimal:
    """The smallest amount of `currency`: 0.01 EUR, 1 JPY, 0.001 KWD."""
    return Decimal(1).scaleb(-minor_unit(currency))


def rounded(amount: Decimal, currency: str) -> Decimal:
    """`amount` to the currency's minor unit, half up (0.005 EUR -> 0.01)."""
    return amount.quantize(quantum(currency), ROUND_HALF_UP)


def plain(amount: Decimal, places: int = 0) -> str:
    """A decimal written out the way people read it: never '0E-8' or '1E+1', trailing zeros
    dropped down to `places` decimals ("3.90" with places=2; "0.123456" stays as it is)."""
    text = format(amount.normalize(), "f")
    if places > 0 and -amount.normalize().as_tuple().exponent < places:
        text = format(amount.quantize(Decimal(1).scaleb(-places)), "f")
    return "0" if text in ("-0", "") else text


def steps_up(quantity: Decimal, step: Decimal | None) -> Decimal:
    """`quantity` rounded up to a whole number of `step`s ("per started minute"); as is without a step."""
    if not step or quantity <= 0:
        return quantity
    return (quantity / step).to_integral_value(ROUND_CEILING) * step
