/* A header that util.c stops using: the tests delete it. */
#define OLD_LIMIT 10
