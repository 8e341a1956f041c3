"""The simulator's draws: one seeded 64-bit hash, and the audience's shape drawn from it."""

from __future__ import annotations

MASK = (1 << 64) - 1


def draw_hash(*parts: int, value: int = 0) -> int:
    """The hash of `parts`; `value` continues a hash already taken of the parts before them
    (`draw_hash(c, value=draw_hash(a, b)) == draw_hash(a, b, c)`)."""
    # splitmix64's finaliser, a fast and well-spread 64-bit hash, written out in the loop:
    # the account's sums call this millions of times at 10,000 streams.
    for part in parts:
        value = ((value ^ (part & MASK)) + 0x9E3779B97F4A7C15) & MASK
        value = ((value ^ (value >> 30)) * 0xBF58476D1CE4E5B9) & MASK
        value = ((value ^ (value >> 27)) * 0x94D049BB133111EB) & MASK
        value ^= value >> 31
    return value


def diurnal_factor(index: int, hour: int) -> int:
    """The audience's factor in `hour` at stream `index`'s local time: evenings 5, days 2."""
    local = (hour % 24 + 3 * index) % 24
    return 1 + (4 if 17 <= local <= 22 else 1 if 9 <= local <= 16 else 0)


def draw_views(diurnal: int, draw: int) -> int:
    """Views of one country in one hour, from its draw."""
    return diurnal * (1 + draw % 40)
