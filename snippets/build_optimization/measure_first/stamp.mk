# A version header rewritten by every make: every build recompiles main.o.
CC := gcc
VERSION := 1.4.2

# --8<-- [start:stamp]
app: main.o util.o
	$(CC) -o $@ $^

%.o: %.c
	$(CC) -c -o $@ $<

main.o: version.h

# FORCE: the recipe runs on every make, and writes a new version.h.
version.h: FORCE
	echo '#define VERSION "$(VERSION)"' > $@

FORCE:
# --8<-- [end:stamp]
