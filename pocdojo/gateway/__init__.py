"""The dojo gateway: authenticates dojo websockets, holds them and moves their bytes to and
from the DojoSession actors (`hub`), whatever server accepted them (`server` runs our own
`websockets` listener; `pocdojo.api.gateway` adapts Starlette's websockets behind Serve)."""
