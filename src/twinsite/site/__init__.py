"""The whole site from the controller: every host of an inventory asked at once (``twinsite site status``)."""
