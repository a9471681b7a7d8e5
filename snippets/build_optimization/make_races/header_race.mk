# A generated header that no rule says main.o needs. `all` lists gen.h first,
# which orders the build only when make runs one job at a time.
# SLOW is empty for you; the tests set it to a command that holds the step.
CC := gcc

# --8<-- [start:broken]
all: gen.h app

app: main.o util.o
	$(CC) -o $@ $^

%.o: %.c
	$(CC) -c -o $@ $<

gen.h: gen.h.in
	$(SLOW) cp gen.h.in $@.tmp
	mv $@.tmp $@
# --8<-- [end:broken]
