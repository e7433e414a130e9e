"""Load generators: wrk with a Lua script when installed, a Python keep-alive client otherwise."""

from dataclasses import dataclass


@dataclass(frozen=True)
class LoadResult:
    """One measured period from the generator's side."""

    generator: str
    requests: int  # responses completed
    seconds: float
    p50_ms: float
    p99_ms: float
    errors: int  # non-2xx answers, socket errors and timeouts

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0
