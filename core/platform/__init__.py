"""What differs between Linux, macOS and Windows, in one place: the calls that lock and
protect key memory, file locks, and handing a private key to OpenSSL without a file.

Every module here imports on every platform; where a platform lacks a call, the module
says what happens instead, and the fallback is tested on Linux by hiding the call.
"""
