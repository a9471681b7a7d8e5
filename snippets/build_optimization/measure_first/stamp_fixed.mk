# The version header replaced only when its text changes.
CC := gcc
VERSION := 1.4.2

app: main.o util.o
	$(CC) -o $@ $^

%.o: %.c
	$(CC) -c -o $@ $<

main.o: version.h

# --8<-- [start:fixed]
# The recipe still runs every time; the file changes only with its text.
version.h: FORCE
	echo '#define VERSION "$(VERSION)"' > $@.tmp
	if cmp -s $@.tmp $@; then rm $@.tmp; else mv $@.tmp $@; fi

FORCE:
# --8<-- [end:fixed]
