#!/bin/sh
# Runs one test program so that it speaks TAP: GTest programs take --tap,
# the integration programs print TAP always and ignore it.
exec "$@" --tap
