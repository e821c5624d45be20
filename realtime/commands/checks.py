"""The doctor's report line, shared by the host checks (doctor.py) and the container checks
(doctor_container.py)."""

from __future__ import annotations

from dataclasses import dataclass

SHM_MIN_MIB = 512  # Docker's default /dev/shm is 64 MiB: too small for torch's shared memory
STATUSES = ("pass", "warn", "fail")


@dataclass(frozen=True)
class Check:
    """One line of the report."""

    status: str  # "pass", "warn" or "fail"
    name: str
    detail: str

    def line(self) -> str:
        """``PASS  name          detail``."""
        return f"{self.status.upper():4}  {self.name:<22} {self.detail}"


def driver_supports(driver: str, runtime: str) -> str:
    """"pass" if the driver's CUDA ≥ the runtime's, "warn" if only the minor is older, else "fail"."""
    have = tuple(int(p) for p in driver.split(".")[:2])
    need = tuple(int(p) for p in runtime.split(".")[:2])
    if have >= need:
        return "pass"
    # CUDA minor-version compatibility: a 12.x runtime runs on any 12.y driver, without newer features.
    return "warn" if have[0] == need[0] else "fail"
