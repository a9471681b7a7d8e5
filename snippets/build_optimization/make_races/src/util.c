#include "util.h"
#include "old.h"

int twice(int value) { return 2 * value; }
