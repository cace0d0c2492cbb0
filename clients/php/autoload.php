<?php
// Minimal PSR-4 autoloader for running these classes without Composer (tests, scripts).
// In a Laravel app Composer does this: add "Chat\\": "app/Grpc/Chat/" and
// "GPBMetadata\\": "app/Grpc/GPBMetadata/" to autoload.psr-4 and `composer require
// google/protobuf` (see README.md).

declare(strict_types=1);

(static function (): void {
    $here = __DIR__;
    // Debian's php-google-protobuf installs the pure-PHP runtime here, without an autoloader.
    $protobuf = getenv('PHP_PROTOBUF_DIR') ?: '/usr/share/php';
    $prefixes = [
        'Google\\Protobuf\\' => "$protobuf/Google/Protobuf/",
        'GPBMetadata\\Google\\Protobuf\\' => "$protobuf/GPBMetadata/Google/Protobuf/",
        'GPBMetadata\\' => "$here/generated/GPBMetadata/",
        'Chat\\' => "$here/generated/Chat/",
        'App\\' => "$here/app/",
    ];
    spl_autoload_register(static function (string $class) use ($prefixes): void {
        foreach ($prefixes as $prefix => $dir) {
            if (str_starts_with($class, $prefix)) {
                $file = $dir . str_replace('\\', '/', substr($class, strlen($prefix))) . '.php';
                if (is_file($file)) {
                    require $file;
                    return;
                }
            }
        }
    });
})();
