# Objects go to build/, and only the order of `all` says build/ comes first.
# SLOW is empty for you; the tests set it to a command that holds the step.
CC := gcc

# --8<-- [start:broken]
all: build build/libutil.a

build/libutil.a: build/util.o
	ar rcs $@ $^

build/%.o: %.c
	$(CC) -c -o $@ $<

build:
	$(SLOW) mkdir -p $@
# --8<-- [end:broken]
