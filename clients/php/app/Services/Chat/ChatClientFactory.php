<?php

declare(strict_types=1);

namespace App\Services\Chat;

use App\Services\ChatGrpcClient;

/**
 * Builds a ChatGrpcClient acting as a given user of this app. Bind it once (e.g. in
 * AppServiceProvider::register):
 *
 *     $this->app->singleton(ChatClientFactory::class, fn () => new ChatClientFactory(
 *         new GrpcWebTransport(config('services.chat.grpc_web_url')),
 *         new ChatTokenIssuer(config('jwt.secret')),
 *     ));
 */
final class ChatClientFactory
{
    public function __construct(
        private readonly GrpcWebTransport $transport,
        private readonly ChatTokenIssuer $tokens,
    ) {
    }

    /** @param object $user anything with `id` and optionally `name`, `email`, `avatar` */
    public function forUser(object $user): ChatGrpcClient
    {
        $claims = [];
        foreach (['name', 'email', 'avatar'] as $claim) {
            if (isset($user->{$claim}) && is_string($user->{$claim}) && $user->{$claim} !== '') {
                $claims[$claim] = $user->{$claim};
            }
        }
        $id = $user->id ?? throw new \InvalidArgumentException('user has no id');
        return new ChatGrpcClient($this->transport, fn (): string => $this->tokens->forUser($id, $claims));
    }
}
