#!/usr/bin/env bash
# Build dist/Careline.app (PyInstaller), sign it with the hardened runtime, put it in
# dist/Careline-VERSION.dmg, and notarize and staple the disk image.
# installers/README.md, "macOS (.app and .dmg)". Run on macOS from the repository root,
# with Careline and PyInstaller installed in the current Python:
#   python -m pip install ".[gui,server,package]"
#   installers/macos/build_dmg.sh
# Environment:
#   PYINSTALLER_SPEC      the spec making dist/Careline.app (default
#                         installers/pyinstaller/careline.spec, the one `make package` uses)
#   MACOS_SIGN_IDENTITY   "Developer ID Application: NAME (TEAMID)"; unset: ad-hoc signing
#                         (this machine only: Gatekeeper refuses it elsewhere)
#   APPLE_ID, APPLE_TEAM_ID, APPLE_APP_PASSWORD
#                         notarization (notarytool, app-specific password); unset: skipped
set -euo pipefail
cd "$(dirname "$0")/../.."

if [ "$(uname -s)" != Darwin ]; then
    echo "build_dmg.sh: this builds a macOS app and runs on macOS only" >&2
    exit 2
fi

APP_NAME=Careline
SPEC=${PYINSTALLER_SPEC:-installers/pyinstaller/careline.spec}
ENTITLEMENTS=installers/macos/entitlements.plist
IDENTITY=${MACOS_SIGN_IDENTITY:-}
VERSION=$(python -c 'import core; print(core.__version__)')
APP="dist/$APP_NAME.app"
DMG="dist/$APP_NAME-$VERSION.dmg"

if [ ! -f "$SPEC" ]; then
    echo "build_dmg.sh: no PyInstaller spec at $SPEC (set PYINSTALLER_SPEC)" >&2
    exit 2
fi

echo "== Freezing $APP_NAME $VERSION with $SPEC"
rm -rf build/pyinstaller "$APP" "$DMG"
python -m PyInstaller --noconfirm --clean --workpath build/pyinstaller "$SPEC"
if [ ! -d "$APP" ]; then
    echo "build_dmg.sh: $SPEC made no $APP (its BUNDLE step names the app)" >&2
    exit 1
fi

sign() {
    if [ -n "$IDENTITY" ]; then
        codesign --force --timestamp --options runtime --entitlements "$ENTITLEMENTS" \
            --sign "$IDENTITY" "$@"
    else
        codesign --force --options runtime --entitlements "$ENTITLEMENTS" --sign - "$@"
    fi
}

echo "== Signing (hardened runtime) ${IDENTITY:-ad hoc}"
# Inside out: every Mach-O file first (libraries, Python extensions, helper programs), then
# the bundle itself. (codesign --deep is not meant for signing, Apple says.)
while IFS= read -r -d '' file; do
    if file -b "$file" | grep -q "Mach-O"; then
        sign "$file"
    fi
done < <(find "$APP/Contents" -type f -print0)
sign "$APP"
codesign --verify --deep --strict --verbose=2 "$APP"

echo "== Disk image $DMG"
staging=$(mktemp -d)
trap 'rm -rf "$staging"' EXIT
cp -R "$APP" "$staging/"
ln -s /Applications "$staging/Applications"
hdiutil create -volname "$APP_NAME $VERSION" -srcfolder "$staging" -ov -format UDZO "$DMG"
if [ -n "$IDENTITY" ]; then
    codesign --force --timestamp --sign "$IDENTITY" "$DMG"
fi

if [ -n "${APPLE_ID:-}" ] && [ -n "$IDENTITY" ]; then
    echo "== Notarizing"
    xcrun notarytool submit "$DMG" --apple-id "$APPLE_ID" --team-id "${APPLE_TEAM_ID:?}" \
        --password "${APPLE_APP_PASSWORD:?}" --wait
    xcrun stapler staple "$DMG"
else
    echo "== Not notarized (APPLE_ID or MACOS_SIGN_IDENTITY unset): for testing only"
fi
echo "$DMG"
