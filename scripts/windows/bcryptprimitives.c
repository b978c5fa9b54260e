/*
 * A stand-in for Windows' bcryptprimitives.dll, for running tests under Wine 8.0 only (never
 * shipped): Rust's std (1.78 and later) imports ProcessPrng from bcryptprimitives.dll, which
 * Wine has only since 9.x, so every Rust .exe fails to start under Debian bookworm's Wine
 * ("Library bcryptprimitives.dll ... not found"). ProcessPrng here fills the buffer from
 * RtlGenRandom (advapi32's SystemFunction036), Wine's own system RNG. scripts/windows.sh
 * builds it with mingw-w64 into the Wine prefix's system32.
 */
#include <windows.h>
#include <ntsecapi.h>

__declspec(dllexport) BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T len)
{
	while (len > 0) {
		ULONG n = len > 0x40000000 ? 0x40000000 : (ULONG)len;
		if (!RtlGenRandom(data, n))
			return FALSE;
		data += n;
		len -= n;
	}
	return TRUE;
}
