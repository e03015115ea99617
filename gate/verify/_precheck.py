"""Rules that need no signature (pure): allowed registries, a matching rule, pinning.

Runs for every subject, whatever its source. A registry reference is checked
before anything is fetched (a disallowed registry is never contacted); a local
image once its names are known, since an archive or a layout only says what it
is called by being opened. An image with several names must satisfy the rule
for each of them: a name the image merely carries must never buy a laxer rule.
"""

from __future__ import annotations

from collections.abc import Sequence

from gate.policy import Pinned, Policy, Rule
from gate.refs import Reference
from gate.result import Result, Status


def precheck(
    names: Sequence[Reference],
    policy: Policy,
    *,
    image: str,
    digest: str | None = None,
    pinned: bool = True,
) -> tuple[tuple[Rule, ...], Result | None]:
    """The rules that apply, or the result that settles the image before any signature.

    ``pinned`` is whether the reference as written names its digest (local sources
    are always content-addressed). An image without names is matched as the
    empty repository, which only a catch-all ``**`` rule (or the default) covers.
    """

    def fail(reason: str, at: str | None = digest) -> tuple[tuple[Rule, ...], Result]:
        return (), Result(image, at, Status.UNTRUSTED, reason)

    rules: list[Rule] = []
    for name in names:
        if not policy.registry_allowed(name):
            allowed = ", ".join(policy.registries or ())
            return fail(
                f"registry {name.registry} is not allowed by the policy (allowed: {allowed})"
            )
    for repository in [n.name for n in names] or [""]:
        rule = policy.rule_for_name(repository)
        if rule is None:
            # one name is the row's own image; of several, say which one no rule covers
            what = "this image's repository" if len(names) == 1 else repository
            what = what or "an image with no repository name"
            return fail(f"no rule in {policy.source} matches {what} and the default is deny")
        if rule not in rules:
            rules.append(rule)
    if not pinned and any(rule.pinned is Pinned.REQUIRED for rule in rules):
        return fail("not pinned by digest; run `sealgate pin` to pin it", None)
    return tuple(rules), None
