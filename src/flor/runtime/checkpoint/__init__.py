"""Capture, serialize and restore in place the objects named by `flor.checkpointing`.

Split by role, each module only importing the ones before it:

- `kinds`: what can be checkpointed and how each object is restored (validation, before
  training starts), and the pieces of a copied state (`Entry`, `Ref`).
- `capture`: runs on the training path, so it only copies (tensors cloned, arrays copied,
  containers rebuilt) and checks that everything can be saved safely; turning the copy into
  bytes is a separate step that may run on a background thread, because training no longer
  mutates the copy.
- `restore`: objects are restored *in place*, so the user's variables keep pointing at the
  same objects.
- `codec`: `Snapshot`, the copy as deterministic bytes (one part per object plus the RNG
  states), so a content-addressed store (`flor.blobs`) dedupes each part.

Every snapshot holds the RNG states too (`random`; numpy's global generator and torch's
CPU generator when those modules are imported) so a restored iteration draws the same
batches, dropout masks and noise. When one named object's state refers to another named
object (`state["net"] is net`), the reference is kept as a reference and restored to that
same object, not to a copy.

Limits: two attributes sharing one unnamed list or array get separate copies on restore.
"""

from flor.runtime.checkpoint.capture import capture
from flor.runtime.checkpoint.codec import Snapshot
from flor.runtime.checkpoint.kinds import PICKLE_ENV, RNG_PART, validate_objects
from flor.runtime.checkpoint.restore import restore

__all__ = ["PICKLE_ENV", "RNG_PART", "Snapshot", "capture", "restore", "validate_objects"]
