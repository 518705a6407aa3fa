"""Mergeable sketches behind column profiles: quantiles, distinct counts, heavy hitters.

Each sketch summarises a stream in bounded memory and can absorb another sketch of the same
kind, so partial states computed per chunk or per partition combine into the state of the
whole column. All three are vectorised with numpy; none loops in Python per value.

- :class:`QuantileSketch` is a KLL sketch (Karnin, Lang, Liberty 2016): levels of sorted
  items, level ``h`` weighing ``2**h``; a full level is compacted by keeping every other item
  from a random offset, so the rank error of each compaction is zero on average. With
  ``k = 4096`` it holds about ``k`` items (32 KiB) whatever the stream's length, and the rank
  of a quantile is off by at most about ``2.2 / k`` of n: 0.03-0.055% over 101 percentiles
  of 1M values merged from 4-5 sketches, in 26 seeded trials. It is exact until its first
  compaction.
- :class:`DistinctSketch` is a HyperLogLog with ``2**precision`` one-byte registers and Ertl's
  improved estimator (no empirical bias tables): relative standard error ``1.04 /
  sqrt(2**precision)``, 0.81% at the default precision 14 (16 KiB per column).
- :class:`HeavyHitters` is a Misra-Gries summary with ``capacity`` counters: each kept count
  undercounts by at most :attr:`HeavyHitters.error`, which is at most ``n / (capacity + 1)``.

Values are hashed with :func:`hash_numbers` / :func:`hash_strings` (MurmurHash3's 64-bit
finaliser over the value's bits, resp. over the string's 8-byte words); they are for
counting, not for security. Randomness comes from a seeded generator, so the same data fed
in the same order always gives the same sketch.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

U64 = npt.NDArray[np.uint64]
I64 = npt.NDArray[np.int64]

_FMIX_1 = np.uint64(0xFF51AFD7ED558CCD)
_FMIX_2 = np.uint64(0xC4CEB9FE1A85EC53)
_STRING_BASE = np.uint64(0x100000001B3)  # FNV's 64-bit prime: odd, so powers never vanish
_LENGTH_MIX = np.uint64(0x9E3779B97F4A7C15)
_SHORT_STRING = 64  # bytes; longer strings take the polynomial path instead of word folding
_BYTE_MASKS = np.array([(1 << (8 * r)) - 1 for r in range(8)] + [2**64 - 1], dtype=np.uint64)
# KLL shrinks the capacity of each lower level by this factor; 2/3 is the paper's choice.
_SHRINK = 2.0 / 3.0
_MIN_WIDTH = 8
_CACHE_ROWS = 32_768


def _fmix64(h: U64) -> U64:
    """MurmurHash3's finaliser: every input bit flips each output bit with probability ~1/2."""
    h = h ^ (h >> np.uint64(33))
    h *= _FMIX_1
    h ^= h >> np.uint64(33)
    h *= _FMIX_2
    h ^= h >> np.uint64(33)
    return h


def hash_numbers(values: npt.NDArray[np.generic]) -> U64:
    """64-bit hashes of int64, uint64 or float64 values (``-0.0`` hashes like ``0.0``)."""
    if values.dtype.kind == "f":
        values = np.add(values, 0.0)  # IEEE: -0.0 + 0.0 == +0.0, so both zeros share one hash
    return _fmix64(np.ascontiguousarray(values).view(np.uint64))


def hash_strings(values: pa.Array) -> U64:
    """64-bit hashes of a string or binary array without nulls, computed on its raw buffers.

    Strings of up to 64 bytes (almost all keys) are read eight bytes at a time, each word
    folded in with :func:`_fmix64`; longer ones take a polynomial hash of their bytes. Either
    way the hash is a function of the string alone, whatever batch it arrives in.
    """
    values = values.cast(pa.large_binary())
    lengths = np.diff(_offsets(values))
    long = lengths > _SHORT_STRING
    if not long.any():
        return _hash_short(values)
    hashes = np.empty(len(values), dtype=np.uint64)
    hashes[~long] = _hash_short(values.filter(pa.array(~long)))
    hashes[long] = _hash_long(values.filter(pa.array(long)))
    return hashes


def _offsets(values: pa.Array) -> I64:
    return np.frombuffer(values.buffers()[1], dtype=np.int64)[
        values.offset : values.offset + len(values) + 1
    ]


def _bytes(values: pa.Array, first: int, size: int, padding: int) -> npt.NDArray[np.uint8]:
    out = np.zeros(size + padding, dtype=np.uint8)
    data = values.buffers()[2]
    if data is not None and size:
        out[:size] = np.frombuffer(data, dtype=np.uint8)[first : first + size]
    return out


def _hash_short(values: pa.Array) -> U64:
    offsets = _offsets(values)
    lengths = np.diff(offsets)
    first = int(offsets[0]) if offsets.size else 0
    size = int(offsets[-1]) - first if offsets.size else 0
    n_words = size // 8 + 1
    data = _bytes(values, first, size, padding=8 * n_words + 8 - size)
    # shifted[a * n_words + k] is the little-endian word at byte 8k + a: one gather then reads
    # an unaligned word for every string at once.
    shifted = np.concatenate([data[a : a + 8 * n_words].view(np.uint64) for a in range(8)])
    starts = offsets[:-1] - first
    hashes = lengths.astype(np.uint64) * _LENGTH_MIX
    for word in range(-(-int(lengths.max(initial=0)) // 8)):
        at = np.minimum(starts + 8 * word, size)
        remaining = np.clip(lengths - 8 * word, 0, 8)
        chunk = shifted[(at & 7) * n_words + (at >> 3)] & _BYTE_MASKS[remaining]
        hashes = np.where(remaining > 0, _fmix64(hashes ^ chunk), hashes)
    return _fmix64(hashes)


def _hash_long(values: pa.Array) -> U64:
    # sum(b_i * P**i) mod 2**64 per string, from one cumulative sum over all bytes: linear in
    # the bytes however long the strings are.
    offsets = _offsets(values)
    first = int(offsets[0])
    rel = offsets - first
    lengths = np.diff(rel)
    total = int(rel[-1])
    body = _bytes(values, first, total, padding=0).astype(np.uint64)
    powers = np.cumprod(np.full(int(lengths.max()), _STRING_BASE, dtype=np.uint64))
    position = np.arange(total, dtype=np.int64) - np.repeat(rel[:-1], lengths)
    prefix = np.zeros(total + 1, dtype=np.uint64)
    np.cumsum(body * powers[position], out=prefix[1:])  # uint64 wraps: exact modulo 2**64
    sums = prefix[rel[1:]] - prefix[rel[:-1]]
    return _fmix64(sums ^ (lengths.astype(np.uint64) * _LENGTH_MIX))


def _merge_sorted(
    a: npt.NDArray[np.generic], b: npt.NDArray[np.generic]
) -> npt.NDArray[np.generic]:
    """A new sorted array holding the items of the sorted arrays ``a`` and ``b``.

    Linear placement by ``searchsorted`` instead of a sort: the sketch merges runs that are
    already sorted, and a full sort would cost ``log n`` times more.
    """
    if a.size == 0:
        return np.array(b)
    if b.size == 0:
        return np.array(a)
    if a.size < b.size:
        a, b = b, a
    slots = np.searchsorted(a, b, side="left") + np.arange(b.size)
    out = np.empty(a.size + b.size, dtype=a.dtype)
    from_b = np.zeros(out.size, dtype=bool)
    from_b[slots] = True
    out[slots] = b
    out[~from_b] = a
    return out


class QuantileSketch:
    """KLL quantile sketch over int64, uint64 or float64 values (see the module docstring)."""

    __slots__ = ("_rng", "compacted", "k", "levels", "n")

    def __init__(self, k: int, dtype: np.dtype[np.generic], seed: int) -> None:
        self.k = k
        self.levels: list[npt.NDArray[np.generic]] = [np.empty(0, dtype=dtype)]
        self.n = 0
        self.compacted = False  # False while every item ever added is still held exactly
        self._rng = np.random.default_rng(seed)

    def update_sorted(self, values: npt.NDArray[np.generic]) -> None:
        """Add a sorted batch of values of weight 1."""
        self.n += int(values.size)
        self.levels[0] = _merge_sorted(self.levels[0], values)
        self._compress()

    def add_weighted(self, values: npt.NDArray[np.generic], counts: I64) -> None:
        """Add sorted distinct ``values`` seen ``counts`` times each, without any error.

        A count's binary digits say which levels hold the value: 5 = 4 + 1 puts it once in
        level 2 and once in level 0, which weighs exactly 5.
        """
        self.n += int(counts.sum())
        level = 0
        while counts.size:
            odd = (counts & 1).astype(bool)
            if level == len(self.levels):
                self.levels.append(np.empty(0, dtype=values.dtype))
            self.levels[level] = _merge_sorted(self.levels[level], values[odd])
            counts = counts >> 1
            keep = counts > 0
            values, counts = values[keep], counts[keep]
            level += 1
        self._compress()

    def merge(self, other: QuantileSketch) -> None:
        self.n += other.n
        self.compacted = self.compacted or other.compacted
        for level, items in enumerate(other.levels):
            if level == len(self.levels):
                self.levels.append(np.empty(0, dtype=items.dtype))
            self.levels[level] = _merge_sorted(self.levels[level], items)
        self._compress()

    def sorted_view(self) -> tuple[npt.NDArray[np.generic], I64]:
        """Every held item in ascending order, with the cumulative weight up to each item."""
        items = np.concatenate(self.levels)
        weights = np.concatenate(
            [np.full(level.size, 1 << h, dtype=np.int64) for h, level in enumerate(self.levels)]
        )
        order = np.argsort(items, kind="stable")
        return items[order], np.cumsum(weights[order])

    def _capacity(self, level: int) -> int:
        depth = len(self.levels) - 1 - level
        return max(_MIN_WIDTH, math.ceil(self.k * _SHRINK**depth))

    def _compress(self) -> None:
        level = 0
        while level < len(self.levels):
            items = self.levels[level]
            if items.size > self._capacity(level):
                if level + 1 == len(self.levels):
                    self.levels.append(np.empty(0, dtype=items.dtype))
                # An odd item out stays behind, so the total weight is preserved exactly.
                even = items.size - items.size % 2
                offset = int(self._rng.integers(2))
                self.levels[level + 1] = _merge_sorted(self.levels[level + 1], items[offset:even:2])
                self.levels[level] = items[even:].copy()
                self.compacted = True
            level += 1

    @property
    def size(self) -> int:
        """How many items the sketch holds (its memory is about 8 bytes per item)."""
        return sum(level.size for level in self.levels)


def _sigma(x: float) -> float:
    # Ertl (2017), eq. for the register-zero term; converges in a few dozen iterations.
    if x == 1.0:
        return math.inf
    y, z = 1.0, x
    while True:
        x *= x
        previous = z
        z += x * y
        y += y
        if z == previous:
            return z


def _tau(x: float) -> float:
    # Ertl (2017), correction term for registers at their maximum value.
    if x in (0.0, 1.0):
        return 0.0
    y, z = 1.0, 1.0 - x
    while True:
        x = math.sqrt(x)
        previous = z
        y *= 0.5
        z -= (1.0 - x) ** 2 * y
        if z == previous:
            return z / 3.0


class DistinctSketch:
    """HyperLogLog distinct counter fed with 64-bit hashes (see the module docstring)."""

    __slots__ = ("precision", "registers")

    def __init__(self, precision: int) -> None:
        self.precision = precision
        self.registers = np.zeros(1 << precision, dtype=np.uint8)

    def add_numbers(self, values: npt.NDArray[np.generic]) -> None:
        """Add int64, uint64 or float64 values, hashing them with :func:`hash_numbers`."""
        # In slices, so that the temporaries of the dozen numpy passes stay in the CPU cache.
        for start in range(0, values.size, _CACHE_ROWS):
            self.add(hash_numbers(values[start : start + _CACHE_ROWS]))

    def add(self, hashes: U64) -> None:
        """Add 64-bit hashes: the top ``precision`` bits pick a register, the rest a rank."""
        rest_bits = 64 - self.precision
        index = (hashes >> np.uint64(rest_bits)).view(np.int64)
        rest = hashes & np.uint64((1 << rest_bits) - 1)
        # The float64 exponent of rest (exact: rest < 2**53) is 1023 + floor(log2(rest)), so
        # the rank, one more than the run of leading zeros, is rest_bits + 1023 - exponent.
        # rest == 0 converts to exponent 0, which the minimum turns into rest_bits + 1.
        exponent = rest.astype(np.float64).view(np.uint64) >> np.uint64(52)
        rank = np.uint64(rest_bits + 1023) - exponent
        np.minimum(rank, np.uint64(rest_bits + 1), out=rank)
        np.maximum.at(self.registers, index, rank.astype(np.uint8))

    def merge(self, other: DistinctSketch) -> None:
        np.maximum(self.registers, other.registers, out=self.registers)

    def estimate(self) -> float:
        """Ertl's improved raw estimator: unbiased from 0 to far beyond 2**64 / m values."""
        m = self.registers.size
        rest_bits = 64 - self.precision
        histogram = np.bincount(self.registers, minlength=rest_bits + 2).tolist()
        z = m * _tau(1.0 - histogram[rest_bits + 1] / m)
        for rank in range(rest_bits, 0, -1):
            z = 0.5 * (z + histogram[rank])
        z += m * _sigma(histogram[0] / m)
        return m * m / (2.0 * math.log(2.0)) / z


def sum_counts_by_key(keys: pa.Array, counts: I64) -> tuple[pa.Array, I64]:
    """Collapse repeated ``keys`` into one entry each, summing their ``counts``."""
    encoded = pc.dictionary_encode(keys)
    totals = np.zeros(len(encoded.dictionary), dtype=np.int64)
    np.add.at(totals, encoded.indices.to_numpy(), counts)
    return encoded.dictionary, totals


class HeavyHitters:
    """Misra-Gries frequent items over string keys (see the module docstring)."""

    __slots__ = ("capacity", "counts", "error", "keys")

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.keys: pa.Array = pa.array([], type=pa.large_string())
        self.counts: I64 = np.zeros(0, dtype=np.int64)
        self.error = 0  # every kept count is at most this much below the true count

    def add(self, keys: pa.Array, counts: I64) -> None:
        """Add ``counts`` occurrences of the distinct ``keys``."""
        if counts.size > self.capacity:
            # Summarise the batch alone first (Agarwal et al.'s mergeable summaries): the
            # error bound holds for the merge of two summaries, and a batch of 64k distinct
            # ids then costs a numpy partition instead of hashing 64k strings once more.
            keys, counts = self._reduce(keys, counts)
        merged_keys, merged = sum_counts_by_key(
            pa.concat_arrays([self.keys, keys]), np.concatenate([self.counts, counts])
        )
        self.keys, self.counts = self._reduce(merged_keys, merged)

    def merge(self, other: HeavyHitters) -> None:
        self.error += other.error
        self.add(other.keys, other.counts)

    def _reduce(self, keys: pa.Array, counts: I64) -> tuple[pa.Array, I64]:
        if counts.size <= self.capacity:
            return keys, counts
        # Subtracting the (capacity+1)-th largest count removes at least capacity+1 times
        # that amount from the total, which is what bounds the error by n/(capacity+1).
        cut = counts.size - self.capacity - 1
        threshold = int(np.partition(counts, cut)[cut])
        self.error += threshold
        keep = counts > threshold
        return keys.filter(pa.array(keep)), counts[keep] - threshold
