/*
 * testutil.h -- helpers every unit test binary links (testutil.c).
 * Runs in: the unit test binaries only.
 */
#ifndef TESTS_UNIT_TESTUTIL_H
#define TESTS_UNIT_TESTUTIL_H

#include <stddef.h>

/* rm -rf path: a test's temporary directory (a file is unlinked). */
void	rm_tree(const char *);
/* Entries of dir, "." and ".." excluded; (size_t)-1 if it cannot open. */
size_t	dir_entries(const char *);

#endif
