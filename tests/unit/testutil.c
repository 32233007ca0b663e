/*
 * testutil.c -- helpers every unit test binary links (testutil.h).
 * Runs in: the unit test binaries only.
 * Failure policy: best effort (what cannot be removed stays).
 */
#include <dirent.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/util.h"
#include "tests/unit/testutil.h"

void
rm_tree(const char *dir)
{
	DIR		*d;
	struct dirent	*de;
	char		*p;

	if ((d = opendir(dir)) == NULL) {
		(void)unlink(dir);
		return;
	}
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 ||
		    strcmp(de->d_name, "..") == 0)
			continue;
		p = path_join(dir, de->d_name);
		if (unlink(p) < 0)
			rm_tree(p);
		free(p);
	}
	closedir(d);
	(void)rmdir(dir);
}

size_t
dir_entries(const char *dir)
{
	DIR		*d;
	struct dirent	*de;
	size_t		 n = 0;

	if ((d = opendir(dir)) == NULL)
		return (size_t)-1;
	while ((de = readdir(d)) != NULL)
		if (strcmp(de->d_name, ".") != 0 &&
		    strcmp(de->d_name, "..") != 0)
			n++;
	closedir(d);
	return n;
}
