<?php

declare(strict_types=1);

namespace App\Http\Controllers\Api;

use App\Http\Controllers\Controller;
use App\Services\Chat\ChatClientFactory;
use App\Services\Chat\GrpcException;
use Illuminate\Http\JsonResponse;
use Illuminate\Http\Request;

/**
 * JSON API over the chat service for the logged-in user (routes in README.md).
 *
 * Differences from the plan's Step 6 controller:
 * - the acting user is `$request->user()`; no user id is read from the request (the service
 *   takes identity from the token, so `created_by` cannot be spoofed);
 * - every send carries a client_msg_id (from the client, the Idempotency-Key header, or a new
 *   UUID), so a retried request does not post twice;
 * - gRPC statuses become the matching HTTP statuses (422, 403, 404, 401, 429, 503) instead of
 *   a blanket 500, and the service's message is returned, never a stack trace.
 */
class ChatGroupController extends Controller
{
    public function __construct(private readonly ChatClientFactory $chat)
    {
    }

    /** GET /api/chat/groups */
    public function index(Request $request): JsonResponse
    {
        return $this->respond(fn () => $this->chat->forUser($request->user())->myGroups());
    }

    /** POST /api/chat/groups {name, description?, member_ids?[]} */
    public function store(Request $request): JsonResponse
    {
        $data = $request->validate([
            'name' => 'required|string|max:100',
            'description' => 'nullable|string|max:1000',
            'member_ids' => 'sometimes|array|max:999',
            'member_ids.*' => 'integer|distinct|exists:users,id',
            'invite_only' => 'sometimes|boolean',
        ]);
        return $this->respond(fn () => $this->chat->forUser($request->user())->createGroup(
            $data['name'],
            $data['description'] ?? '',
            array_values(array_map('intval', $data['member_ids'] ?? [])),
            (bool) ($data['invite_only'] ?? false),
        ), 201);
    }

    /** POST /api/chat/groups/{group}/messages {content, client_msg_id?} */
    public function sendMessage(Request $request, int $group): JsonResponse
    {
        $data = $request->validate([
            'content' => 'required|string|max:4000',
            'client_msg_id' => 'nullable|string|max:64',
            'reply_to_id' => 'nullable|integer|min:1',
        ]);
        $key = $data['client_msg_id'] ?? $request->header('Idempotency-Key');
        return $this->respond(fn () => $this->chat->forUser($request->user())->sendMessage(
            $group,
            $data['content'],
            is_string($key) && $key !== '' ? $key : null,
            (int) ($data['reply_to_id'] ?? 0),
        ), 201);
    }

    /** GET /api/chat/groups/{group}/messages?before_id=&limit= */
    public function history(Request $request, int $group): JsonResponse
    {
        $data = $request->validate([
            'before_id' => 'nullable|integer|min:0',
            'limit' => 'nullable|integer|min:1|max:200',
        ]);
        return $this->respond(fn () => $this->chat->forUser($request->user())->history(
            $group,
            (int) ($data['limit'] ?? 50),
            (int) ($data['before_id'] ?? 0),
        ));
    }

    /** POST /api/chat/groups/{group}/join and .../leave */
    public function join(Request $request, int $group): JsonResponse
    {
        return $this->respond(fn () => ['joined' => $this->chat->forUser($request->user())->join($group)]);
    }

    public function leave(Request $request, int $group): JsonResponse
    {
        return $this->respond(fn () => ['left' => $this->chat->forUser($request->user())->leave($group)]);
    }

    /** @param callable(): mixed $call */
    private function respond(callable $call, int $status = 200): JsonResponse
    {
        try {
            return response()->json(['data' => $call()], $status);
        } catch (GrpcException $e) {
            return response()->json(
                ['message' => $e->details, 'status' => $e->statusName()],
                $e->httpStatus(),
            );
        }
    }
}
