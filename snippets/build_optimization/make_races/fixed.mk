# The same program with every prerequisite declared: it builds under any -j.
# SLOW is empty for you; the tests set it to a command that holds the step.
CC := gcc
OUT := build
DEPFLAGS ?= -MMD -MP
OBJS := $(OUT)/main.o $(OUT)/util.o

# --8<-- [start:fixed]
$(OUT)/app: $(OBJS)
	$(CC) -o $@ $^

# '| $(OUT)': the directory must exist; its timestamp does not matter.
$(OUT)/%.o: %.c | $(OUT)
	$(CC) -I$(OUT) $(DEPFLAGS) -c -o $@ $<

# A clean build has no .d files yet: the generated header is declared by hand.
$(OUT)/main.o: $(OUT)/gen.h

$(OUT)/gen.h: gen.h.in | $(OUT)
	$(SLOW) cp gen.h.in $@.tmp
	mv $@.tmp $@

$(OUT):
	$(SLOW) mkdir -p $@

# -MMD writes build/main.d beside build/main.o; -MP adds a rule per header.
-include $(OBJS:.o=.d)
# --8<-- [end:fixed]
