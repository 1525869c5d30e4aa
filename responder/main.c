/* SPDX-License-Identifier: Apache-2.0 */
/* Placeholder until its issue lands. */
#include <stdio.h>

int main(void)
{
	fputs("not implemented yet\n", stderr);
	return 1;
}
