#include <stdio.h>

#include "gen.h"
#include "util.h"

int main(void) {
    printf("%s %d\n", GREETING, twice(BUILD_NUMBER));
    return 0;
}
