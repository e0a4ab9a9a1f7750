"""What the operations on a scenario share: the :class:`~twinsite.ops.site.Site` they run on and the persisted,
resumable step runner (:mod:`~twinsite.ops.runner`). Switchovers and assured-recovery tests are built on them."""
