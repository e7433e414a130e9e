"""The wrong-key check: concurrent sampled requests, each answer compared with its user's key.

A response is right when it carries that user's own key: the Gemini routes answer the user
they authenticated and the fingerprint of the key their client holds (`{"user", "fp"}`);
`/v1/copilotkit/config` answers the user's publishable CopilotKit key (`public_api_key`),
compared by fingerprint. Anything else is classified: another user's key, the
operator's key (the servers' environment holds one), no key, or a failed request.
"""

import asyncio
import json
import random
from dataclasses import dataclass, field

from bench.environment import OPERATOR_GEMINI_KEY
from bench.fingerprint import fingerprint
from bench.load.pyclient import build_request, fetch_all, new_event_loop
from bench.seeding import BenchUser


@dataclass
class CheckResult:
    sampled: int = 0
    right: int = 0
    other_user: int = 0
    operator: int = 0
    no_key: int = 0
    wrong_user: int = 0  # answered for a user other than the token's
    failed: int = 0  # non-200, unparsable, or no answer at all
    examples: list[str] = field(default_factory=list)

    @property
    def wrong(self) -> int:
        return self.other_user + self.operator + self.no_key + self.wrong_user

    def add(self, other: "CheckResult") -> None:
        for name in ("sampled", "right", "other_user", "operator", "no_key", "wrong_user"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.failed += other.failed
        self.examples = (self.examples + other.examples)[:5]


def check(
    port: int,
    path: str,
    users: list[BenchUser],
    *,
    samples: int,
    connections: int,
    rng: random.Random,
    everyone: bool = False,
) -> CheckResult:
    """`samples` concurrent requests as random users (every user once if `everyone`), each
    answer compared with the key of the user whose token it carried."""
    picks = (
        list(range(len(users))) if everyone else [rng.randrange(len(users)) for _ in range(samples)]
    )
    samples = len(picks)
    requests = [build_request(port, path, users[i].token) for i in picks]
    with asyncio.Runner(loop_factory=new_event_loop()) as runner:
        answers = runner.run(fetch_all(requests, port, connections=connections))
    owner_of = {u.gemini_fp: u.user_id for u in users}
    owner_of.update({u.copilotkit_fp: u.user_id for u in users})
    operator_fp = fingerprint(OPERATOR_GEMINI_KEY)
    result = CheckResult(sampled=samples, failed=samples - len(answers))
    for index, status, body in answers:
        user = users[picks[index]]
        try:
            data = json.loads(body) if status == 200 else None
        except ValueError:
            data = None
        if not isinstance(data, dict):
            result.failed += 1
            continue
        if "public_api_key" in data:
            public = data["public_api_key"]
            fp, own = (fingerprint(public) if public else None), user.copilotkit_fp
        else:
            fp, own = data.get("fp"), user.gemini_fp
        if "user" in data and data["user"] != user.user_id:
            result.wrong_user += 1
        elif fp == own:
            result.right += 1
        elif fp is None:
            result.no_key += 1
        elif fp == operator_fp:
            result.operator += 1
        else:
            result.other_user += 1
            if len(result.examples) < 5:
                result.examples.append(f"{user.user_id} got {owner_of.get(fp, 'unknown')}'s key")
    return result
