"""PostgreSQL advisory lock keys; each is a constant so every process takes the same lock."""

from __future__ import annotations

APPEND = 0x61676E7462757301
"""Held (transaction scope) while positions are drawn and events inserted, so positions commit in order."""

MIGRATE = 0x61676E7462757302
"""Held (transaction scope) while migrations run, so two starting processes do not race."""

PROJECTOR_CLASS = 0x61676E74
"""First half of a projector's session lock; the second half is `hashtext(<projector name>)`.

The two-int form of the advisory lock functions never collides with the bigint form above.
"""

PARTITION_CLASS = 0x61676E75
"""First half of a command partition's session lock; the second half is `hashtext('<prefix>/<partition>')`."""

RETENTION = 0x61676E7462757303
"""Held (transaction scope) while a retention sweep runs, so one worker sweeps at a time."""
