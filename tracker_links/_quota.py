"""A quota shared by processes: one pacing timeline, one 429 cool-down, one learned rate.

``TrackerClient(..., quota=FileQuota(path))`` (processes of one machine, through one file) or
``quota=RedisQuota(url, key=...)`` (processes anywhere, through Redis) makes every client that
uses the same quota pace on one shared timeline: the slots of all of them together follow the
rate, a 429 seen by one pauses all of them, and the rate one of them learns is everyone's.

The shared record (:class:`Shared`) and its two operations are pure functions here
(:func:`book`, :func:`report`); :class:`FileQuota` applies them under an ``fcntl`` lock,
:class:`RedisQuota` in Lua scripts (one round trip per admission). Each admission refreshes
the process's lease (a member id and an expiry a few seconds ahead); the number of live leases
scales what one process measures to the whole quota. A process that dies holds no slot and no
share: its bookings pass with time, its lease expires.
"""

from __future__ import annotations

import fcntl
import json
import math
import os
import time
import urllib.parse
from collections.abc import Callable
from typing import Any, Final, Protocol

import attrs

from ._exceptions import InvalidInputError

__all__ = ["FileQuota", "Quota", "RedisQuota", "Shared", "book", "quota_from_url", "report"]

#: Seconds a lease lives after its process's last admission.
LEASE: Final = 10.0
#: A growing rate is booked at the rate of its slot up to this far ahead of the admission.
AHEAD: Final = 4.0
#: The first phase (no rate learned yet) is one member's for at most this long: the others
#: wait, asking again every ``LEAD_POLL`` seconds, until its first 429 or the end of it.
LEAD: Final = 1.0
LEAD_POLL: Final = 0.05
_RECORD: Final = 4096  # the file's fixed size: one JSON record, space-padded
_BOOT_SLACK: Final = 10.0


@attrs.define
class Shared:
    """The shared state: the next free slot (``tat``), the cool-down, the learned rate."""

    tat: float = 0.0
    cooldown_until: float = 0.0
    epoch: int = 0
    adaptive: list[float] | None = None
    members: dict[str, float] = attrs.field(factory=dict)
    slots: int = 0  # slots booked so far, by everyone
    epoch_slots: int = 0  # ``slots`` when the current epoch began (its event); -1: not known
    accepted: int = 0  # answers other than 429 so far, everyone's (as reported at admissions)
    lead: str = ""  # the member that had the first phase to itself (see ``LEAD``)
    lead_until: float = 0.0  # when its lead ends (0: nobody led yet)


@attrs.frozen
class Admission:
    """The answer to an admission: wait ``wait`` seconds (``booked``: then go; otherwise the
    cool-down's time left: ask again), the epoch, the learned rate, the live members."""

    wait: float
    booked: bool
    epoch: int
    adaptive: list[float] | None
    members: int
    now: float  # the quota's clock at the admission
    slots: int = 0  # slots booked so far by everyone (this one included)
    accepted: int = 0  # answers other than 429 so far, everyone's (this admission's included)
    epoch_slots: int = 0  # ``slots`` when the epoch began (-1: not known, an older record)

    @property
    def slot(self) -> int:
        """Which of its epoch's slots this booking is (the slots everyone booked since the
        epoch's event, this one included); 0 where a record from before kept no count."""
        return self.slots - self.epoch_slots if self.epoch_slots >= 0 else 0


def book(
    state: Shared,
    now: float,
    interval: float | None,
    member: str,
    growth: float = 0.0,
    accepted: int = 0,
) -> Admission:
    """Admit one request at ``now``: GCRA on the shared timeline, no burst (pure).

    ``interval`` is the spacing at ``now``; a rate that grows (``growth``: d ln rate / dt, per
    second) is booked at the rate in force at the slot itself, up to ``AHEAD`` seconds on.
    ``accepted``: the member's answers other than 429 since its last admission.

    Before anything is learned (no rate, no 429 yet) the first member to ask leads: for up to
    ``LEAD`` seconds the others wait (``LEAD_POLL`` at a time) until its first 429 ends the
    lead. The first phase, unpaced, is then one member's, as one client's would be: 8
    processes that opened their windows together had 107 of their first second's requests
    answered 429 (1.1% of a run of 10,000)."""
    state.accepted += accepted
    members = state.members
    members[member] = now + LEASE
    for name in [m for m, until in members.items() if until < now]:
        del members[name]
    if now < state.cooldown_until:
        wait, booked = state.cooldown_until - now, False
    elif interval is None:
        wait, booked = 0.0, True
        if state.epoch == 0 and state.adaptive is None:
            if state.lead_until == 0.0:
                state.lead, state.lead_until = member, now + LEAD
            # A lead further off than its length is not this clock's (a record written
            # before a reboot): nobody waits for it.
            if state.lead != member and now < state.lead_until <= now + LEAD:
                wait, booked = min(state.lead_until - now, LEAD_POLL), False
    else:
        tat = state.tat if state.tat > now else now
        if growth > 0.0:
            interval *= math.exp(-growth * min(tat - now, AHEAD))
        state.tat = tat + interval
        wait, booked = tat - now, True
    if booked:
        state.slots += 1
    return Admission(
        wait,
        booked,
        state.epoch,
        state.adaptive,
        len(members),
        now,
        state.slots,
        state.accepted,
        state.epoch_slots,
    )


def report(
    state: Shared, now: float, epoch: int, cooldown: float, adaptive: list[float] | None
) -> bool:
    """A 429 for a request admitted in ``epoch``: extend the shared cool-down; the first
    report of an epoch is an event: it voids every booking and shares ``adaptive`` (pure)."""
    until = now + cooldown
    if until > state.cooldown_until:
        state.cooldown_until = until
    if epoch != state.epoch:
        return False
    state.epoch += 1
    state.epoch_slots = state.slots
    state.tat = state.cooldown_until
    if adaptive is not None:
        state.adaptive = adaptive
    return True


class Quota(Protocol):
    """What a shared quota does; :class:`FileQuota` and :class:`RedisQuota` implement it."""

    async def admit(
        self, interval: float | None, member: str, growth: float = 0.0, accepted: int = 0
    ) -> Admission: ...

    async def rate_limited(
        self, epoch: int, cooldown: float, adaptive: list[float] | None
    ) -> bool: ...

    async def __aenter__(self) -> Any: ...

    async def __aexit__(self, *exc: object) -> None: ...


def _as_dict(state: Shared) -> dict[str, Any]:
    return attrs.asdict(state)


def _from_dict(data: dict[str, Any]) -> Shared:
    return Shared(
        tat=float(data.get("tat", 0.0)),
        cooldown_until=float(data.get("cooldown_until", 0.0)),
        epoch=int(data.get("epoch", 0)),
        adaptive=data.get("adaptive"),
        members={str(k): float(v) for k, v in data.get("members", {}).items()},
        slots=int(data.get("slots", 0)),
        accepted=int(data.get("accepted", 0)),
        # Not kept before: in such a record's epoch the count would start at its first slot.
        epoch_slots=int(data.get("epoch_slots", -1 if data.get("epoch") else 0)),
        lead=str(data.get("lead", "")),
        lead_until=float(data.get("lead_until", 0.0)),
    )


def _boot() -> str | float:
    """This boot of the machine: its id (Linux), or when ``time.monotonic`` began."""
    try:
        with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as f:
            return f.read().strip()
    except OSError:
        return time.time() - time.monotonic()


def _same_boot(recorded: object, boot: str | float) -> bool:
    if isinstance(recorded, str) or isinstance(boot, str):
        return recorded == boot
    # When the monotonic clock began, as the wall clock tells it: a few seconds off after the
    # wall clock was set, far off after a reboot (or a suspend: then the record starts over).
    return isinstance(recorded, (int, float)) and abs(recorded - boot) < _BOOT_SLACK


class FileQuota:
    """A quota shared by the processes of one machine, through one small file.

    Each admission locks the file (``fcntl.flock``), reads the record, books a slot and writes
    it back: microseconds, done in place (a lock dies with its process). The clock is
    ``time.monotonic``, shared by every process of the machine; a record written before the
    machine rebooted (its times in the old boot's clock) starts over. ::

        quota = FileQuota("/tmp/tracker-links.quota")
        async with TrackerClient.from_env(quota=quota) as client:
            ...
    """

    def __init__(
        self, path: str | os.PathLike[str], *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.path = os.fspath(path)
        self.clock = clock
        self._fd: int | None = None
        # The record's times are this boot's monotonic clock (none to check on another clock).
        self._boot = _boot() if clock is time.monotonic else None

    def __repr__(self) -> str:
        return f"FileQuota({self.path!r})"

    def _open(self) -> int:
        if self._fd is None:
            try:
                self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
            except OSError as exc:
                raise InvalidInputError(
                    f"cannot open the quota file {self.path!r}: {exc}"
                ) from None
        return self._fd

    def _locked(self, fn: Callable[[Shared, float], Any]) -> Any:
        fd = self._open()
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            raw = os.pread(fd, _RECORD, 0).strip()
            boot = self._boot
            try:
                data = json.loads(raw) if raw else {}
                state = _from_dict(data)
                if boot is not None and data and not _same_boot(data.get("boot"), boot):
                    # Written before a reboot: a cool-down or a timeline days ahead (or a
                    # lease that never ends) in this boot's clock. Start over.
                    state = Shared()
            except (ValueError, TypeError, AttributeError):
                state = Shared()  # a torn or foreign record: start over, nothing is lost
            result = fn(state, self.clock())
            record = _as_dict(state) if boot is None else {"boot": boot, **_as_dict(state)}
            out = json.dumps(record, separators=(",", ":")).encode()
            os.pwrite(fd, out.ljust(_RECORD), 0)
            return result
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)

    async def admit(
        self, interval: float | None, member: str, growth: float = 0.0, accepted: int = 0
    ) -> Admission:
        result: Admission = self._locked(
            lambda s, now: book(s, now, interval, member, growth, accepted)
        )
        return result

    async def rate_limited(self, epoch: int, cooldown: float, adaptive: list[float] | None) -> bool:
        result: bool = self._locked(lambda s, now: report(s, now, epoch, cooldown, adaptive))
        return result

    async def __aenter__(self) -> FileQuota:
        self._open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


# The same two operations in Lua, on one hash (the record) and one sorted set (the leases).
# The clock is the Redis server's, so processes on different machines share it. Times go out in
# full (``num``): Lua's ``tostring`` keeps 14 digits, a tenth of a millisecond of a clock that
# counts seconds since 1970, and every booking of 1.001 / 200 s rounded down to 5.0 ms.
_LUA_NOW = """
local function num(x) return string.format('%.17g', x) end
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
"""
_LUA_ADMIT = (
    _LUA_NOW
    + f"local AHEAD = {AHEAD!r}\nlocal LEAD = {LEAD!r}\nlocal LEAD_POLL = {LEAD_POLL!r}\n"
    + """
local interval = tonumber(ARGV[1])
redis.call('ZADD', KEYS[2], now + tonumber(ARGV[3]), ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
redis.call('PEXPIRE', KEYS[2], 600000)
local members = redis.call('ZCARD', KEYS[2])
local done = redis.call('HINCRBY', KEYS[1], 'accepted', tonumber(ARGV[5]) or 0)
local s = redis.call('HMGET', KEYS[1], 'tat', 'cooldown_until', 'epoch', 'adaptive', 'slots',
                    'lead', 'lead_until', 'epoch_slots')
local tat = tonumber(s[1]) or 0
local cool = tonumber(s[2]) or 0
local epoch = tonumber(s[3]) or 0
local adaptive = s[4] or ''
local slots = tonumber(s[5]) or 0
local wait, booked = 0, 1
if now < cool then
  wait, booked = cool - now, 0
elseif interval > 0 then
  if tat < now then tat = now end
  wait = tat - now
  local growth = tonumber(ARGV[4]) or 0
  if growth > 0 then interval = interval * math.exp(-growth * math.min(wait, AHEAD)) end
  redis.call('HSET', KEYS[1], 'tat', num(tat + interval))
elseif epoch == 0 and adaptive == '' then
  local lead, lead_until = s[6] or '', tonumber(s[7]) or 0
  if lead_until == 0 then
    lead, lead_until = ARGV[2], now + LEAD
    redis.call('HSET', KEYS[1], 'lead', lead, 'lead_until', num(lead_until))
  end
  if lead ~= ARGV[2] and now < lead_until and lead_until <= now + LEAD then
    wait, booked = math.min(lead_until - now, LEAD_POLL), 0
  end
end
if booked == 1 then slots = redis.call('HINCRBY', KEYS[1], 'slots', 1) end
redis.call('PEXPIRE', KEYS[1], 86400000)
local epoch_slots = tonumber(s[8]) or (epoch > 0 and -1 or 0)
return {num(wait), booked, epoch, adaptive, members, num(now), slots, done, epoch_slots}
"""
)
_LUA_REPORT = (
    _LUA_NOW
    + """
local epoch = tonumber(ARGV[1])
local untl = now + tonumber(ARGV[2])
local s = redis.call('HMGET', KEYS[1], 'cooldown_until', 'epoch', 'slots')
local cool = tonumber(s[1]) or 0
if untl > cool then
  cool = untl
  redis.call('HSET', KEYS[1], 'cooldown_until', num(cool))
end
if epoch ~= (tonumber(s[2]) or 0) then return 0 end
redis.call('HSET', KEYS[1], 'epoch', epoch + 1, 'tat', num(cool), 'epoch_slots', s[3] or 0)
if ARGV[3] ~= '' then redis.call('HSET', KEYS[1], 'adaptive', ARGV[3]) end
return 1
"""
)


class RedisQuota:
    """A quota shared by processes on any machines, through Redis (``pip install
    'tracker-links[redis]'``: coredis, which runs on asyncio and trio).

    Every admission is one round trip (an atomic Lua script); the clock is the server's.
    Enter it (or the client that uses it) with ``async with``::

        async with RedisQuota("redis://localhost:6379/0", key="tracker:my-token") as quota:
            async with TrackerClient.from_env(quota=quota) as client:
                ...
    """

    def __init__(self, url: str, *, key: str = "tracker-links") -> None:
        if not url.startswith(("redis://", "rediss://", "unix://")):
            got = f"not {url.partition(':')[0]!r}:" if ":" in url else "got no scheme"
            raise InvalidInputError(  # never the URL itself: it may hold a password
                f"a Redis URL starts with redis://, rediss:// or unix:// ({got})"
            )
        self.url = url
        self.key = key
        self._client: Any = None
        self._admit: Any = None
        self._report: Any = None

    def __repr__(self) -> str:
        parts = urllib.parse.urlsplit(self.url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
        return f"RedisQuota('{parts.scheme}://{host}{port}{parts.path}', key={self.key!r})"

    async def __aenter__(self) -> RedisQuota:
        try:
            import coredis
        except ImportError:  # pragma: no cover - depends on the extra
            raise InvalidInputError(
                "RedisQuota needs coredis: pip install 'tracker-links[redis]'"
            ) from None
        client = coredis.Redis.from_url(self.url, decode_responses=True)
        await client.__aenter__()
        self._client = client
        self._admit = client.register_script(_LUA_ADMIT)
        self._report = client.register_script(_LUA_REPORT)
        return self

    async def __aexit__(self, *exc: object) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.__aexit__(None, None, None)

    def _keys(self) -> list[str]:
        return [f"{self.key}:state", f"{self.key}:members"]

    async def admit(
        self, interval: float | None, member: str, growth: float = 0.0, accepted: int = 0
    ) -> Admission:
        if self._admit is None:
            raise InvalidInputError("enter the RedisQuota (async with) before using it")
        args = [repr(interval or 0.0), member, repr(LEASE), repr(growth), str(accepted)]
        answer = await self._admit(self._keys(), args)
        wait, booked, epoch, adaptive, members, now, slots, done, epoch_slots = answer
        return Admission(
            float(wait),
            bool(int(booked)),
            int(epoch),
            json.loads(adaptive) if adaptive else None,
            int(members),
            float(now),
            int(slots),
            int(done),
            int(epoch_slots),
        )

    async def rate_limited(self, epoch: int, cooldown: float, adaptive: list[float] | None) -> bool:
        if self._report is None:
            raise InvalidInputError("enter the RedisQuota (async with) before using it")
        shared = json.dumps(adaptive) if adaptive is not None else ""
        answer = await self._report(self._keys(), [str(epoch), repr(cooldown), shared])
        return bool(int(answer))


def quota_from_url(text: str) -> FileQuota | RedisQuota:
    """``file:PATH`` -> :class:`FileQuota`; ``redis://HOST[:PORT][/DB][?key=KEY]`` (or
    ``rediss://``) -> :class:`RedisQuota`. For the CLI's ``--quota``."""
    if text.startswith("file:"):
        path = text[len("file:") :]
        if not path:
            raise InvalidInputError("--quota file:PATH needs a path")
        return FileQuota(path)
    if text.startswith(("redis://", "rediss://")):
        parts = urllib.parse.urlsplit(text)
        query = urllib.parse.parse_qs(parts.query)
        key = query.pop("key", ["tracker-links"])[-1]
        rest = urllib.parse.urlencode({k: v[-1] for k, v in query.items()})
        url = urllib.parse.urlunsplit(parts._replace(query=rest))
        return RedisQuota(url, key=key)
    raise InvalidInputError(f"--quota takes file:PATH or redis://HOST:PORT/DB, got {text!r}")
