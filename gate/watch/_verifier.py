"""The seam to the gate's verifier: an image ID (or a remembered repo digest) in, a Result out.

Nothing here decides trust: it runs the same ``Verifier`` as ``sealgate
verify``. It only turns "could not even start" into a Result, so the
watchdog always has one: a broken policy is ``PolicyFault`` from the
factory, and becomes ERROR marked ``extra["fault"] == "policy"`` (alerted
once for the whole host, never enforced).

Remembered repo digests (see ``_state``): when the engine no longer lists a
repo digest the image had when first seen (its tag was removed), the
watchdog verifies each remembered ``REPO@sha256:…`` as a registry reference
too and combines the verdicts with ``combine``. We chose this over passing the
digests into the docker:// source because it needs nothing new from the
verifier: a registry reference is verified exactly as ``sealgate verify``
would.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from gate.errors import SealgateError
from gate.refs import Source, SourceKind, parse_source
from gate.result import Result, Status

if TYPE_CHECKING:
    from gate.engine import Engine
    from gate.verify import Verifier


class PolicyFault(SealgateError):
    """The policy file is missing, unreadable or invalid: nothing can be verified."""


def image_verifier(
    verifier_factory: Callable[[], Verifier], engine: Engine
) -> Callable[[str], Result]:
    """Verify an image ID (``sha256:…``, through the engine) or a registry reference."""
    from gate.verify import Target

    def verify(image: str) -> Result:
        if image.startswith("sha256:"):
            source = Source(SourceKind.DOCKER, f"docker://{image}", name=image)
        else:
            source = parse_source(image)
        try:
            verifier = verifier_factory()
        except PolicyFault as e:
            return Result(image, None, Status.ERROR, e.message, extra={"fault": "policy"})
        try:
            return verifier.run([Target(source)])[0]
        except SealgateError as e:
            return Result(image, None, Status.ERROR, e.brief)

    return verify


def combine(first: Result, alternatives: Sequence[Result]) -> Result:
    """One verdict for an image from its docker:// result and its remembered repo digests.

    Only called when ``first`` found no signature (UNKNOWN). A verdict against
    the image under any of its names wins (a revocation of one repo digest is a
    revocation of the image); then a TRUSTED one; then ERROR, since "the
    registry that holds its signatures is down" is "could not tell", not
    "unsigned"; else ``first``.
    """
    for status in (Status.UNTRUSTED, Status.TRUSTED, Status.ERROR):
        for result in alternatives:
            if result.status is status:
                return result
    return first
