/*
 * testutil.h -- helpers every unit test binary links (testutil.c).
 * Runs in: the unit test binaries only.
 */
#ifndef TESTS_UNIT_TESTUTIL_H
#define TESTS_UNIT_TESTUTIL_H

/* rm -rf path: a test's temporary directory (a file is unlinked). */
void	rm_tree(const char *);

#endif
