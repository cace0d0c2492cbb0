<?php
// The few Laravel pieces ChatGroupController touches, so the test can run the real controller
// without a Laravel install (there is no Packagist here). Behaviour is the subset it relies on:
// validate() returns the validated keys (rules are not evaluated), user() the logged-in user.

declare(strict_types=1);

namespace App\Http\Controllers {
    abstract class Controller
    {
    }
}

namespace Illuminate\Http {
    class Request
    {
        /** @param array<string, mixed> $input @param array<string, string> $headers */
        public function __construct(
            private readonly array $input,
            private readonly ?object $user,
            private readonly array $headers = [],
        ) {
        }

        /** @param array<string, string> $rules @return array<string, mixed> */
        public function validate(array $rules): array
        {
            $out = [];
            foreach (array_keys($rules) as $key) {
                if (!str_contains($key, '.') && array_key_exists($key, $this->input)) {
                    $out[$key] = $this->input[$key];
                }
            }
            return $out;
        }

        public function user(): ?object
        {
            return $this->user;
        }

        public function header(string $name): ?string
        {
            return $this->headers[strtolower($name)] ?? null;
        }
    }

    class JsonResponse
    {
        public function __construct(public readonly mixed $data, public readonly int $status)
        {
        }

        public function getStatusCode(): int
        {
            return $this->status;
        }

        public function getData(bool $assoc = false): mixed
        {
            return json_decode(json_encode($this->data, JSON_THROW_ON_ERROR), $assoc);
        }
    }
}

namespace {
    final class StubResponseFactory
    {
        public function json(mixed $data, int $status = 200): \Illuminate\Http\JsonResponse
        {
            return new \Illuminate\Http\JsonResponse($data, $status);
        }
    }

    function response(): StubResponseFactory
    {
        return new StubResponseFactory();
    }
}
