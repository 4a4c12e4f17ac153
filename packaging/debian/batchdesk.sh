#!/bin/sh
# /usr/bin/batchdesk: the bundle in /opt/batchdesk, with whatever arguments were given.
exec /opt/batchdesk/batchdesk "$@"
