"""The host watchdog: verify every container as it starts, sweep as a safety net, alert on change.

vcn-watchdog polled ``docker ps`` every 60 s, verified what each tag pointed
at *now*, posted to Slack on every failure, every minute, and stopped
whatever it could not verify. Here:

* the engine's event stream triggers a verification the moment a container
  starts, restarts or unpauses; a periodic sweep catches anything missed, and
  a sweep runs at once when the policy file or the ledger changes and when a
  cached result reaches ``--refresh`` seconds of age;
* what is verified is the image the container was created from (``.Image``,
  its image ID and the repo digests it had when first seen), never what its
  tag points at now;
* enforcement (stop, kill, pause) follows a verdict only: UNTRUSTED, UNKNOWN,
  and UNSUPPORTED when the policy denies it. ERROR ("could not tell": a
  registry outage, a broken policy) is alerted, never enforced; the
  watchdog's own container is never acted on;
* alerts fire when a container's status changes, never once per sweep; a
  fault of the watchdog's own (broken policy, unwritable state directory) is
  alerted once for the host;
* alerts, metric points and enforcement run in threads of their own, each sink
  behind an on-disk spool, so a slow receiver delays nothing else.
"""

from gate.watch._dog import Watchdog
from gate.watch._options import SELF_LABEL, Enforcement, WatchOptions, enforceable
from gate.watch._self import Self, own_container_ids
from gate.watch._verifier import PolicyFault, combine, image_verifier

__all__ = [
    "SELF_LABEL",
    "Enforcement",
    "PolicyFault",
    "Self",
    "WatchOptions",
    "Watchdog",
    "combine",
    "enforceable",
    "image_verifier",
    "own_container_ids",
]
