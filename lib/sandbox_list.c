/* sandbox_list: the sandbox configuration's lists of paths (sandbox.h).
 * Init walks them: sandbox_list_next is async-signal-safe. */
#include "config.h"

#include <errno.h>
#include <string.h>

#include "sandbox.h"

const char *sandbox_list_next(const char *list, const char *cur)
{
	const char *p = cur == NULL ? list : cur + strlen(cur) + 1;

	return *p != '\0' ? p : NULL;
}

int sandbox_list_add(char *list, const char *path)
{
	size_t used = 0, len = path != NULL ? strlen(path) : 0;

	if (path == NULL || path[0] != '/') {
		errno = EINVAL;
		return -1;
	}
	for (const char *p = sandbox_list_next(list, NULL); p != NULL;
	     p = sandbox_list_next(list, p))
		used = (size_t)(p - list) + strlen(p) + 1;
	/* the path, its NUL, and the empty string that ends the list */
	if (used + len + 2 > SANDBOX_LIST_MAX) {
		errno = ENAMETOOLONG;
		return -1;
	}
	memcpy(list + used, path, len + 1);
	list[used + len + 1] = '\0';
	return 0;
}
