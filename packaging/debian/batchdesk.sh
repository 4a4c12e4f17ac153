#!/bin/sh
# /usr/bin/batchdesk: the bundle in /usr/lib/batchdesk, with whatever arguments were given.
exec /usr/lib/batchdesk/batchdesk "$@"
